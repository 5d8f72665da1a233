//! The province configuration: agencies, areas and their gazetteer, categories with routing rules, deadlines and
//! classifier vocabulary, the working-day calendar. Parsed and validated from TOML (`config/province.toml` is the
//! bundled default); every error names the file, line and column of the offending item so an admin can fix it.
//!
//! The TOML is read into private `Raw*` structs that keep source spans (`toml::Spanned`), then checked and turned
//! into the public types below. Nothing here does I/O: the caller reads the file and passes its text.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use serde::Deserialize;
use time::{Date, Month, Time, UtcOffset, Weekday};
use toml::Spanned;

use crate::calendar::Span;
use crate::classify::{self, Model};

/// Where `{area}` stands in an area-dependent route (`police_{area}` becomes `police_dian`).
pub const AREA_PLACEHOLDER: &str = "{area}";

/// A validated province configuration. Build it with [`Province::parse`] or [`Province::bundled`].
#[derive(Debug, Clone)]
pub struct Province {
    /// Short code of the province, e.g. `binhduong`.
    pub code: String,
    pub name: String,
    /// The hotline number, e.g. `1022`.
    pub hotline: String,
    /// Where the first line of the config came from (a path, or `bundled`), for messages.
    pub origin: String,
    pub agencies: Vec<Agency>,
    pub areas: Vec<Area>,
    pub categories: Vec<Category>,
    /// Routing rule and classifier phrases of each category, in the order of `categories`.
    pub rules: Vec<CategoryRules>,
    /// Place names of each area (wards, communes, landmarks, aliases), in the order of `areas`.
    pub gazetteer: Vec<AreaPlaces>,
    /// Where each area is on the map, if configured, in the order of `areas` (for [`Province::area_at`]).
    pub centres: Vec<Option<Centre>>,
    pub calendar: Calendar,
    pub classifier: ClassifierSettings,
    pub emergency: EmergencySettings,
    pub area_recognition: AreaRecognitionSettings,
    triage_agency: usize,
    /// The phrase tables compiled for [`Province::route`]; built once here so routing never re-normalises them.
    pub(crate) model: Model,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agency {
    pub code: String,
    pub name_vi: String,
    pub name_en: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    pub code: String,
    pub name: String,
    /// `"city"` or `"district"`.
    pub kind: String,
}

/// An area's rough place on the map: a centre and a radius that covers most of it. Enough to tell which
/// district a shared location (a Zalo pin, a phone's GPS) falls in; borders are not modelled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Centre {
    pub lat: f64,
    pub lon: f64,
    pub radius_km: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub code: String,
    pub name_vi: String,
    pub name_en: String,
    /// Dispatched at once, whatever the queue; never chosen by the ordinary classifier, only by emergency
    /// detection or by a channel that gave it.
    pub emergency: bool,
    /// How long the competent agency has to confirm it took the petition up (the acknowledgement deadline).
    pub acknowledge: Deadline,
    /// How long the competent agency has to answer (the resolution deadline). The name predates `acknowledge`.
    pub deadline: Deadline,
}

/// A deadline as written in the configuration. [`Deadline::span`] (in `calendar`) turns it into time to count:
/// working units on the calendar, the others on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Emergencies: never waiting for a working day. How long that is comes from
    /// [`EmergencySettings::immediate_acknowledge`] / [`EmergencySettings::immediate_deadline`], set once for all
    /// emergency categories.
    Immediate,
    /// Counted on the working-day calendar, one day being a full day of working hours.
    WorkingDays(u32),
    /// Wall-clock hours, whatever the calendar says.
    Hours(u32),
    /// Counted in working hours only (lunch breaks, nights, weekends and holidays do not count).
    WorkingHours(u32),
    /// Wall-clock minutes, whatever the calendar says.
    Minutes(u32),
}

impl Deadline {
    /// Counted on the wall clock: nights, weekends and holidays included. `Immediate` is, by definition.
    pub fn is_wall_clock(self) -> bool {
        matches!(self, Deadline::Immediate | Deadline::Hours(_) | Deadline::Minutes(_))
    }
}

/// The routing rule and the classifier vocabulary of one category.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryRules {
    pub category: String,
    /// Agency code; may contain `{area}` (see [`AREA_PLACEHOLDER`]).
    pub route: String,
    /// Agency used when `route` depends on the area and the area is unknown.
    pub route_without_area: Option<String>,
    /// For an ordinary category: evidence that a petition belongs to it. For an emergency category: signals that
    /// an emergency of that kind is happening.
    pub phrases: Vec<WeightedPhrase>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeightedPhrase {
    /// As written in the config (with diacritics); matched after normalisation.
    pub phrase: String,
    pub weight: f64,
}

/// Every name the text recogniser knows for one area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaPlaces {
    pub area: String,
    /// Other ways people write the area's own name (`TDM`, `TP Dĩ An`); count as the area's name.
    pub aliases: Vec<String>,
    /// Wards, towns and communes.
    pub places: Vec<String>,
    /// Industrial parks, crossroads, lakes...
    pub landmarks: Vec<String>,
}

/// Working days and holidays. Times are local to `utc_offset` (the province has no daylight saving).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// IANA name, for display and for other systems; arithmetic uses `utc_offset`.
    pub timezone: String,
    pub utc_offset: UtcOffset,
    pub working_days: Vec<Weekday>,
    /// Office hours of a working day, sorted, not overlapping.
    pub working_hours: Vec<(Time, Time)>,
    /// Holidays on the same day every year.
    pub fixed_holidays: Vec<FixedHoliday>,
    /// Per-year lists published by the government (lunar holidays, adjacent and compensatory days).
    pub years: Vec<CalendarYear>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedHoliday {
    pub month: Month,
    pub day: u8,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarYear {
    pub year: i32,
    /// Days off (each day of a range listed separately).
    pub holidays: Vec<(Date, String)>,
    /// Weekend days worked to make up for a bridged holiday.
    pub extra_working_days: Vec<(Date, String)>,
}

impl Calendar {
    /// A day off: a fixed holiday or one of that year's published holidays.
    pub fn is_holiday(&self, date: Date) -> bool {
        self.fixed_holidays.iter().any(|h| h.month == date.month() && h.day == date.day())
            || self.years.iter().filter(|y| y.year == date.year()).any(|y| y.holidays.iter().any(|(d, _)| *d == date))
    }

    /// A day when agencies work: a usual working weekday that is no holiday, or a published make-up day.
    pub fn is_working_day(&self, date: Date) -> bool {
        let extra = self
            .years
            .iter()
            .filter(|y| y.year == date.year())
            .any(|y| y.extra_working_days.iter().any(|(d, _)| *d == date));
        extra || (self.working_days.contains(&date.weekday()) && !self.is_holiday(date))
    }

    /// Whether the province has published that year's holiday list. Deadlines counted into a year without one
    /// miss its lunar holidays; callers may want to warn.
    pub fn has_year(&self, year: i32) -> bool {
        self.years.iter().any(|y| y.year == year)
    }
}

/// Knobs of the ordinary classifier. See [`Province::route`] for how they combine.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierSettings {
    /// The general-questions category: the only one allowed without phrases.
    pub general_category: String,
    /// The best category needs at least this score...
    pub min_score: f64,
    /// ...and at least this confidence, else the petition goes to triage.
    pub min_confidence: f64,
    /// The lead over the runner-up at which confidence is 0.5.
    pub confidence_margin: f64,
    /// Phrases never counted as evidence (salutations, the hotline's own name).
    pub ignore: Vec<String>,
    /// A one-word phrase matched only because the citizen typed no accents ("so" for "sổ", "số" or "sợ")
    /// counts this fraction of its weight: a lone unaccented syllable is too ambiguous, unless another phrase of
    /// its category in the same sentence backs it up.
    pub unaccented_single_word_factor: f64,
}

/// Knobs of emergency detection.
#[derive(Debug, Clone, PartialEq)]
pub struct EmergencySettings {
    /// An emergency category whose signals reach this score raises the emergency.
    pub threshold: f64,
    /// Words of urgency ("gấp", "ngay"); add `urgency_bonus` once when some emergency signal matched.
    pub urgency: Vec<String>,
    pub urgency_bonus: f64,
    /// Phrases inside which emergency words mean nothing ("cháy hàng" = sold out, "fire safety").
    pub not_emergency: Vec<String>,
    /// Words that void a signal starting within `negation_window` words after them ("nguy cơ", "phòng chống").
    pub negations: Vec<String>,
    pub negation_window: usize,
    /// Words that place a sentence in the past ("tháng trước"): its signals do not count...
    pub past: Vec<String>,
    /// ...unless the sentence also says it is happening now ("đang", "vừa").
    pub present: Vec<String>,
    /// Words whose unaccented spelling often means something else ("chay" is also "chạy", running): a signal
    /// that is one of them alone, typed without accents, or is spelt like one of `other_readings`, counts
    /// `unaccented_factor` of its weight unless its sentence settles the reading (see `context`).
    pub ambiguous_without_accents: Vec<String>,
    pub unaccented_factor: f64,
    /// The ordinary meanings of the ambiguous words ("xe chạy", "tiêu chảy", "sắp bị"), written with accents so
    /// they only catch words typed without. One spelt exactly like a signal makes it ambiguous; one starting
    /// before it, or starting with it and running past it, voids it.
    pub other_readings: Vec<String>,
    /// What burns ("nhà", "nhà trọ", "bình gas"). Within `context_window` words of a signal of
    /// `settled_by_context`, it settles an ambiguous reading and adds `context_bonus` once to that emergency:
    /// "nhà tôi bị cháy" is a fire, "máy bơm bị cháy" is not.
    pub context: Vec<String>,
    pub context_window: usize,
    pub context_bonus: f64,
    /// The signals that say nothing of what burns or falls, so that `context` can settle them ("cháy", "bị
    /// cháy": nobody runs a house), unlike "cháy xe", whose "chạy xe" is as natural next to a house. Each is a
    /// signal phrase of an emergency category resting on a word of `ambiguous_without_accents`.
    pub settled_by_context: Vec<String>,
    /// What [`Deadline::Immediate`] stands for in a category's `acknowledge`...
    pub immediate_acknowledge: Deadline,
    /// ...and in its `deadline`. Both wall-clock (`Minutes` or `Hours`), never `Immediate` themselves.
    pub immediate_deadline: Deadline,
}

/// Knobs of area recognition from the text.
#[derive(Debug, Clone, PartialEq)]
pub struct AreaRecognitionSettings {
    /// A place name right after one of these words is a street named after it, weaker evidence.
    pub street_words: Vec<String>,
    pub street_weight: f64,
    /// How many words around a name shared by two areas to look for one of those areas' own names.
    pub context_window: usize,
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct ProvinceError {
    pub origin: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl Province {
    pub const BUNDLED: &'static str = include_str!("../../../config/province.toml");

    /// Parses and validates a configuration. `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Province, ProvinceError> {
        let cx = Cx { text, origin };
        let raw: RawConfig = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;
        build(&cx, raw)
    }

    /// The default configuration shipped in the binary.
    pub fn bundled() -> Province {
        // The bundled text is a compile-time constant covered by a unit test, so this cannot fail in a build that
        // passed its tests; a panic here is a packaging bug, not an input problem.
        Province::parse(Self::BUNDLED, "config/province.toml (bundled)").expect("the bundled province.toml is valid")
    }

    pub fn category(&self, code: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.code == code)
    }

    pub fn agency(&self, code: &str) -> Option<&Agency> {
        self.agencies.iter().find(|a| a.code == code)
    }

    pub fn area(&self, code: &str) -> Option<&Area> {
        self.areas.iter().find(|a| a.code == code)
    }

    /// The area whose code, name or alias is `code_or_name`, regardless of case and diacritics
    /// (`"dian"`, `"Dĩ An"` and `"di an"` all give Dĩ An).
    pub fn resolve_area(&self, code_or_name: &str) -> Option<&Area> {
        if let Some(area) = self.area(code_or_name) {
            return Some(area);
        }
        let wanted = classify::normalize(code_or_name);
        if wanted.is_empty() {
            return None;
        }
        self.areas.iter().zip(&self.gazetteer).find_map(|(area, places)| {
            let hit = classify::normalize(&area.name) == wanted
                || classify::normalize(&area.code) == wanted
                || places.aliases.iter().any(|a| classify::normalize(a) == wanted);
            hit.then_some(area)
        })
    }

    /// The area a point falls in: among the areas whose centre is configured and whose radius reaches the point,
    /// the one the point is relatively nearest to (distance divided by radius, so a small city next to a large
    /// district keeps its own streets). `None` outside every radius, or for coordinates that are no coordinates.
    pub fn area_at(&self, lat: f64, lon: f64) -> Option<&Area> {
        if !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) {
            return None;
        }
        self.areas
            .iter()
            .zip(&self.centres)
            .filter_map(|(area, centre)| {
                let c = centre.as_ref()?;
                let d = distance_km(lat, lon, c.lat, c.lon);
                (d <= c.radius_km).then_some((area, d / c.radius_km))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(area, _)| area)
    }

    /// The hotline desk: answers from its knowledge base and triages what the classifier could not place.
    pub fn triage_agency(&self) -> &Agency {
        &self.agencies[self.triage_agency]
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    pub fn agencies(&self) -> &[Agency] {
        &self.agencies
    }

    pub fn areas(&self) -> &[Area] {
        &self.areas
    }

    /// The routing rule of a category.
    pub fn rules(&self, category: &str) -> Option<&CategoryRules> {
        self.rules.iter().find(|r| r.category == category)
    }

    /// The agency competent for `category` in `area` (an area code, or `None` when unknown): the category's
    /// route with `{area}` filled in, or its `route_without_area`. `None` only for an unknown category. Use it
    /// to re-route an open petition when its area becomes known.
    pub fn agency_for(&self, category: &str, area: Option<&str>) -> Option<&Agency> {
        let rules = self.rules(category)?;
        let code = resolve_route(rules, area.filter(|a| self.area(a).is_some()))?;
        self.agency(&code)
    }
}

/// Great-circle distance in kilometres (haversine; the Earth as a sphere of radius 6371 km).
fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// The agency code of a rule for an area; validation guarantees it names an existing agency.
pub(crate) fn resolve_route(rules: &CategoryRules, area: Option<&str>) -> Option<String> {
    if !rules.route.contains(AREA_PLACEHOLDER) {
        return Some(rules.route.clone());
    }
    match area {
        Some(area) => Some(rules.route.replace(AREA_PLACEHOLDER, area)),
        None => rules.route_without_area.clone(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Raw TOML shapes. `deny_unknown_fields` everywhere: a misspelt key is an error, not a silently ignored setting.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    province: RawProvince,
    agencies: Spanned<Vec<RawAgency>>,
    areas: Spanned<Vec<RawArea>>,
    categories: Spanned<Vec<RawCategory>>,
    calendar: Spanned<RawCalendar>,
    classifier: RawClassifier,
    emergency: RawEmergency,
    area_recognition: RawAreaRecognition,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvince {
    code: Spanned<String>,
    name: String,
    hotline: String,
    triage_agency: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgency {
    code: Spanned<String>,
    name_vi: Spanned<String>,
    name_en: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArea {
    code: Spanned<String>,
    name: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    #[serde(default)]
    places: Vec<Spanned<String>>,
    #[serde(default)]
    landmarks: Vec<Spanned<String>>,
    /// `centre = { lat = .., lon = .., radius_km = .. }`: where the area is (optional).
    #[serde(default)]
    centre: Option<Spanned<RawCentre>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCentre {
    lat: f64,
    lon: f64,
    radius_km: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    code: Spanned<String>,
    name_vi: Spanned<String>,
    name_en: Spanned<String>,
    acknowledge: Spanned<String>,
    deadline: Spanned<String>,
    #[serde(default)]
    emergency: bool,
    route: Spanned<String>,
    #[serde(default)]
    route_without_area: Option<Spanned<String>>,
    #[serde(default)]
    phrases: RawTiers,
}

/// Phrases by strength; the weight of each tier is set once in `[classifier]` / `[emergency]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTiers {
    #[serde(default)]
    strong: Vec<Spanned<String>>,
    #[serde(default)]
    medium: Vec<Spanned<String>>,
    #[serde(default)]
    weak: Vec<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RawWeights {
    strong: f64,
    medium: f64,
    weak: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    timezone: Spanned<String>,
    utc_offset: Spanned<String>,
    working_days: Spanned<Vec<Spanned<String>>>,
    working_hours: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    fixed_holidays: Vec<RawFixedHoliday>,
    #[serde(default)]
    year: Vec<RawYear>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixedHoliday {
    date: Spanned<String>,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    year: Spanned<i64>,
    #[serde(default)]
    holidays: Vec<RawDay>,
    #[serde(default)]
    extra_working_days: Vec<RawDay>,
}

/// One day (`date`) or an inclusive range (`from` .. `to`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDay {
    #[serde(default)]
    date: Option<Spanned<String>>,
    #[serde(default)]
    from: Option<Spanned<String>>,
    #[serde(default)]
    to: Option<Spanned<String>>,
    name: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassifier {
    general_category: Spanned<String>,
    min_score: Spanned<f64>,
    min_confidence: Spanned<f64>,
    confidence_margin: Spanned<f64>,
    weights: Spanned<RawWeights>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    unaccented_single_word_factor: Spanned<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmergency {
    immediate_acknowledge: Spanned<String>,
    immediate_deadline: Spanned<String>,
    threshold: Spanned<f64>,
    weights: Spanned<RawWeights>,
    #[serde(default)]
    urgency: Vec<Spanned<String>>,
    urgency_bonus: Spanned<f64>,
    #[serde(default)]
    not_emergency: Vec<Spanned<String>>,
    #[serde(default)]
    negations: Vec<Spanned<String>>,
    negation_window: usize,
    #[serde(default)]
    past: Vec<Spanned<String>>,
    #[serde(default)]
    present: Vec<Spanned<String>>,
    #[serde(default)]
    ambiguous_without_accents: Vec<Spanned<String>>,
    unaccented_factor: Spanned<f64>,
    // Optional, so a config written before these existed keeps its old behaviour.
    #[serde(default)]
    other_readings: Vec<Spanned<String>>,
    #[serde(default)]
    context: Vec<Spanned<String>>,
    #[serde(default)]
    context_window: usize,
    #[serde(default)]
    context_bonus: Option<Spanned<f64>>,
    #[serde(default)]
    settled_by_context: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAreaRecognition {
    #[serde(default)]
    street_words: Vec<Spanned<String>>,
    street_weight: Spanned<f64>,
    context_window: usize,
}

// ---------------------------------------------------------------------------------------------------------------
// Validation.

/// The text being parsed, to turn byte spans into line and column.
struct Cx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Cx<'_> {
    fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> ProvinceError {
        let (line, column) = line_column(self.text, span.start);
        ProvinceError { origin: self.origin.to_owned(), line, column, message: message.into() }
    }

    fn toml_error(&self, e: &toml::de::Error) -> ProvinceError {
        // A few serde errors (a missing top-level table) carry no span: report them at the top of the file.
        let span = e.span().unwrap_or(0..0);
        self.error_at(span, e.message().trim().to_owned())
    }
}

/// 1-based line and column (in characters) of a byte offset; offsets past the end or inside a character clamp.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

type Res<T> = std::result::Result<T, ProvinceError>;

fn build(cx: &Cx<'_>, raw: RawConfig) -> Res<Province> {
    let RawConfig { province, agencies, areas, categories, calendar, classifier, emergency, area_recognition } = raw;

    // Agencies.
    let agencies_span = agencies.span();
    let mut agency_list = Vec::new();
    let mut agency_index: HashMap<String, usize> = HashMap::new();
    for a in agencies.into_inner() {
        let code = checked_code(cx, &a.code, "agency")?;
        // An agency code is the audience token of its feed subjects (`hotline.feed.v1.<agency>.*`): `public` would
        // send the agency's full copies, citizen contact included, into the public feed.
        if code == RESERVED_AGENCY_CODE {
            return Err(cx.error_at(
                a.code.span(),
                format!("agency code \"{code}\" is reserved: it names the public feed (hotline.feed.v1.public.*)"),
            ));
        }
        if agency_index.insert(code.clone(), agency_list.len()).is_some() {
            return Err(cx.error_at(a.code.span(), format!("duplicate agency code \"{code}\"")));
        }
        let name_vi = non_empty(cx, a.name_vi, "name_vi")?;
        let name_en = non_empty(cx, a.name_en, "name_en")?;
        agency_list.push(Agency { code, name_vi, name_en });
    }
    if agency_list.is_empty() {
        return Err(cx.error_at(agencies_span, "at least one agency is needed"));
    }
    let triage_agency = *agency_index.get(province.triage_agency.get_ref()).ok_or_else(|| {
        cx.error_at(
            province.triage_agency.span(),
            format!("triage_agency \"{}\" is not a defined agency", province.triage_agency.get_ref()),
        )
    })?;

    // Areas and their places.
    let areas_span = areas.span();
    let mut area_list = Vec::new();
    let mut gazetteer = Vec::new();
    let mut centres = Vec::new();
    // Normalised name -> (area index, where it was written): a name may be listed by two areas (that makes it
    // ambiguous), but an area's own name or alias must not be another area's place.
    let mut area_names: HashMap<String, usize> = HashMap::new();
    let mut place_owner: Vec<(String, usize, Range<usize>)> = Vec::new();
    for a in areas.into_inner() {
        let code = checked_code(cx, &a.code, "area")?;
        if area_list.iter().any(|x: &Area| x.code == code) {
            return Err(cx.error_at(a.code.span(), format!("duplicate area code \"{code}\"")));
        }
        let kind = a.kind.get_ref().clone();
        if kind != "city" && kind != "district" {
            return Err(
                cx.error_at(a.kind.span(), format!("area kind must be \"city\" or \"district\", not \"{kind}\""))
            );
        }
        let index = area_list.len();
        let name_span = a.name.span();
        let name = non_empty(cx, a.name, "name")?;
        let mut own_names = vec![(name.clone(), name_span)];
        own_names.extend(a.aliases.iter().map(|s| (s.get_ref().clone(), s.span())));
        for (n, span) in &own_names {
            let key = phrase_key(cx, n, span.clone())?;
            if let Some(&other) = area_names.get(&key)
                && other != index
            {
                return Err(cx.error_at(
                    span.clone(),
                    format!("\"{n}\" is already the name or alias of area \"{}\"", area_list_code(&area_list, other)),
                ));
            }
            area_names.insert(key, index);
        }
        let mut seen = HashSet::new();
        for p in a.places.iter().chain(&a.landmarks) {
            let key = phrase_key(cx, p.get_ref(), p.span())?;
            if !seen.insert(key.clone()) {
                return Err(cx.error_at(p.span(), format!("\"{}\" is listed twice for area \"{code}\"", p.get_ref())));
            }
            place_owner.push((key, index, p.span()));
        }
        gazetteer.push(AreaPlaces {
            area: code.clone(),
            aliases: a.aliases.into_iter().map(Spanned::into_inner).collect(),
            places: a.places.into_iter().map(Spanned::into_inner).collect(),
            landmarks: a.landmarks.into_iter().map(Spanned::into_inner).collect(),
        });
        centres.push(match &a.centre {
            Some(c) => {
                let r = c.get_ref();
                let ok = (-90.0..=90.0).contains(&r.lat)
                    && (-180.0..=180.0).contains(&r.lon)
                    && r.radius_km.is_finite()
                    && r.radius_km > 0.0
                    && r.radius_km <= 500.0;
                if !ok {
                    return Err(cx.error_at(
                        c.span(),
                        "centre needs lat within -90..90, lon within -180..180 and radius_km within 0..500",
                    ));
                }
                Some(Centre { lat: r.lat, lon: r.lon, radius_km: r.radius_km })
            }
            None => None,
        });
        area_list.push(Area { code, name, kind });
    }
    if area_list.is_empty() {
        return Err(cx.error_at(areas_span, "at least one area is needed"));
    }
    for (key, index, span) in &place_owner {
        if let Some(&owner) = area_names.get(key)
            && owner != *index
        {
            return Err(cx.error_at(
                span.clone(),
                format!(
                    "this place has the name of area \"{}\"; an area's name cannot be a place of another area",
                    area_list[owner].code
                ),
            ));
        }
    }

    // Classifier and emergency knobs come before categories: phrase weights depend on them.
    let weights = checked_weights(cx, &classifier.weights)?;
    let emergency_weights = checked_weights(cx, &emergency.weights)?;
    let min_confidence = fraction(cx, &classifier.min_confidence, "min_confidence")?;
    let min_score = non_negative(cx, &classifier.min_score, "min_score")?;
    let unaccented_single_word_factor =
        fraction(cx, &classifier.unaccented_single_word_factor, "unaccented_single_word_factor")?;
    let confidence_margin = positive(cx, &classifier.confidence_margin, "confidence_margin")?;
    let threshold = positive(cx, &emergency.threshold, "threshold")?;
    let urgency_bonus = non_negative(cx, &emergency.urgency_bonus, "urgency_bonus")?;
    let unaccented_factor = fraction(cx, &emergency.unaccented_factor, "unaccented_factor")?;
    let context_bonus = match &emergency.context_bonus {
        Some(b) => non_negative(cx, b, "context_bonus")?,
        None => 0.0,
    };
    let street_weight = non_negative(cx, &area_recognition.street_weight, "street_weight")?;

    // Categories.
    let categories_span = categories.span();
    let mut category_list: Vec<Category> = Vec::new();
    let mut rules = Vec::new();
    // Each category's acknowledge and deadline as written, checked against each other once the calendar and the
    // meaning of "immediate" are known.
    let mut order_checks: Vec<(Range<usize>, String, String)> = Vec::new();
    for c in categories.into_inner() {
        let code = checked_code(cx, &c.code, "category")?;
        if category_list.iter().any(|x| x.code == code) {
            return Err(cx.error_at(c.code.span(), format!("duplicate category code \"{code}\"")));
        }
        let acknowledge = checked_deadline(cx, &c.acknowledge, "acknowledge")?;
        let deadline = checked_deadline(cx, &c.deadline, "deadline")?;
        // Emergencies never wait for a working day: a fire reported on Saturday night is not due on Monday.
        for (value, written, name) in
            [(acknowledge, &c.acknowledge, "acknowledge"), (deadline, &c.deadline, "deadline")]
        {
            if c.emergency && !value.is_wall_clock() {
                return Err(cx.error_at(
                    written.span(),
                    format!(
                        "an emergency category must have {name} \"immediate\" or in wall-clock \"N minutes\" / \
                         \"N hours\", never in working time"
                    ),
                ));
            }
        }
        order_checks.push((c.acknowledge.span(), c.acknowledge.get_ref().clone(), c.deadline.get_ref().clone()));
        let route = checked_route(cx, &c.route, &agency_index, &area_list, &code)?;
        let route_without_area = match (&c.route_without_area, route.contains(AREA_PLACEHOLDER)) {
            (Some(r), true) => {
                if r.get_ref().contains(AREA_PLACEHOLDER) {
                    return Err(cx.error_at(
                        r.span(),
                        "route_without_area is used when the area is unknown: it cannot contain {area}",
                    ));
                }
                Some(checked_route(cx, r, &agency_index, &area_list, &code)?)
            }
            (None, true) => {
                return Err(cx.error_at(
                    c.route.span(),
                    format!(
                        "category \"{code}\" routes by area: add route_without_area for petitions whose area is unknown"
                    ),
                ));
            }
            (Some(r), false) => {
                return Err(cx.error_at(r.span(), "route_without_area only makes sense when route contains {area}"));
            }
            (None, false) => None,
        };
        let tier_weights = if c.emergency { emergency_weights } else { weights };
        let mut phrases = Vec::new();
        let mut seen = HashSet::new();
        for (list, weight) in [
            (&c.phrases.strong, tier_weights.strong),
            (&c.phrases.medium, tier_weights.medium),
            (&c.phrases.weak, tier_weights.weak),
        ] {
            for p in list {
                let key = phrase_key(cx, p.get_ref(), p.span())?;
                if !seen.insert(key) {
                    return Err(cx.error_at(
                        p.span(),
                        format!("phrase \"{}\" is listed twice in category \"{code}\"", p.get_ref()),
                    ));
                }
                phrases.push(WeightedPhrase { phrase: p.get_ref().clone(), weight });
            }
        }
        let name_vi = non_empty(cx, c.name_vi, "name_vi")?;
        let name_en = non_empty(cx, c.name_en, "name_en")?;
        rules.push((c.code.span(), CategoryRules { category: code.clone(), route, route_without_area, phrases }));
        category_list.push(Category { code, name_vi, name_en, emergency: c.emergency, acknowledge, deadline });
    }
    if category_list.is_empty() {
        return Err(cx.error_at(categories_span, "at least one category is needed"));
    }
    let general = classifier.general_category.get_ref();
    match category_list.iter().find(|c| &c.code == general) {
        None => {
            return Err(cx.error_at(
                classifier.general_category.span(),
                format!("general_category \"{general}\" is not a defined category"),
            ));
        }
        Some(c) if c.emergency => {
            return Err(
                cx.error_at(classifier.general_category.span(), "general_category cannot be an emergency category")
            );
        }
        Some(_) => {}
    }
    for (span, r) in &rules {
        if r.phrases.is_empty() && &r.category != general {
            return Err(cx.error_at(
                span.clone(),
                format!(
                    "category \"{}\" has no phrases, so no petition could ever be classified into it; \
                     only the general category (\"{general}\") may have none",
                    r.category
                ),
            ));
        }
    }
    if !category_list.iter().any(|c| c.emergency) {
        return Err(cx.error_at(categories_span, "at least one category must be an emergency category"));
    }
    let rules: Vec<CategoryRules> = rules.into_iter().map(|(_, r)| r).collect();

    let calendar = build_calendar(cx, calendar)?;

    let strings = |list: &[Spanned<String>]| -> Res<Vec<String>> {
        list.iter().map(|s| phrase_key(cx, s.get_ref(), s.span()).map(|_| s.get_ref().clone())).collect()
    };
    let classifier = ClassifierSettings {
        general_category: general.clone(),
        min_score,
        min_confidence,
        confidence_margin,
        ignore: strings(&classifier.ignore)?,
        unaccented_single_word_factor,
    };
    // Context settles signals resting on an ambiguous word: anything else listed there would silently do
    // nothing, a misspelt signal included.
    let ambiguous: Vec<String> =
        emergency.ambiguous_without_accents.iter().map(|w| classify::phrase_key(w.get_ref())).collect();
    let signals: HashSet<String> = category_list
        .iter()
        .zip(&rules)
        .filter(|(c, _)| c.emergency)
        .flat_map(|(_, r)| r.phrases.iter().map(|p| classify::phrase_key(&p.phrase)))
        .collect();
    for p in &emergency.settled_by_context {
        let key = classify::phrase_key(p.get_ref());
        if !signals.contains(&key) {
            return Err(cx.error_at(
                p.span(),
                format!("settled_by_context: \"{}\" is not a phrase of an emergency category", p.get_ref()),
            ));
        }
        if !key.split(' ').any(|w| ambiguous.iter().any(|a| a == w)) {
            return Err(cx.error_at(
                p.span(),
                format!("settled_by_context: \"{}\" has no word of ambiguous_without_accents", p.get_ref()),
            ));
        }
    }
    // What "immediate" means: wall-clock time of its own, else it would mean nothing or wait for a working day.
    let immediate = |value: &Spanned<String>, key: &str| -> Res<Deadline> {
        let deadline = checked_deadline(cx, value, key)?;
        if deadline == Deadline::Immediate || !deadline.is_wall_clock() {
            return Err(
                cx.error_at(value.span(), format!("{key} must be wall-clock time: \"N minutes\" or \"N hours\""))
            );
        }
        Ok(deadline)
    };
    let immediate_acknowledge = immediate(&emergency.immediate_acknowledge, "immediate_acknowledge")?;
    let immediate_deadline = immediate(&emergency.immediate_deadline, "immediate_deadline")?;
    let none = Span::WallMinutes(0);
    if immediate_acknowledge.span(&calendar, none).minutes() > immediate_deadline.span(&calendar, none).minutes() {
        return Err(cx.error_at(
            emergency.immediate_acknowledge.span(),
            "immediate_acknowledge is longer than immediate_deadline: a petition is acknowledged before it is \
             answered",
        ));
    }
    // The same for every category. Spans of different kinds (wall clock against working time) compare differently
    // from one ticket to the next: `Province::deadlines` caps the acknowledgement at the answer for those.
    let immediate_spans = (immediate_acknowledge.span(&calendar, none), immediate_deadline.span(&calendar, none));
    for (c, (span, acknowledge, deadline)) in category_list.iter().zip(&order_checks) {
        let longer =
            match (c.acknowledge.span(&calendar, immediate_spans.0), c.deadline.span(&calendar, immediate_spans.1)) {
                (Span::WallMinutes(a), Span::WallMinutes(d)) | (Span::WorkingMinutes(a), Span::WorkingMinutes(d)) => {
                    a > d
                }
                _ => false,
            };
        if longer {
            return Err(cx.error_at(
                span.clone(),
                format!(
                    "acknowledge \"{acknowledge}\" is longer than deadline \"{deadline}\": a petition is acknowledged \
                     before it is answered"
                ),
            ));
        }
    }

    let emergency = EmergencySettings {
        threshold,
        urgency: strings(&emergency.urgency)?,
        urgency_bonus,
        not_emergency: strings(&emergency.not_emergency)?,
        negations: strings(&emergency.negations)?,
        negation_window: emergency.negation_window,
        past: strings(&emergency.past)?,
        present: strings(&emergency.present)?,
        ambiguous_without_accents: strings(&emergency.ambiguous_without_accents)?,
        unaccented_factor,
        other_readings: strings(&emergency.other_readings)?,
        context: strings(&emergency.context)?,
        context_window: emergency.context_window,
        context_bonus,
        settled_by_context: strings(&emergency.settled_by_context)?,
        immediate_acknowledge,
        immediate_deadline,
    };
    let area_recognition = AreaRecognitionSettings {
        street_words: strings(&area_recognition.street_words)?,
        street_weight,
        context_window: area_recognition.context_window,
    };

    let model =
        Model::build(&category_list, &rules, &area_list, &gazetteer, &classifier, &emergency, &area_recognition);
    Ok(Province {
        code: province.code.into_inner(),
        name: province.name,
        hotline: province.hotline,
        origin: cx.origin.to_owned(),
        agencies: agency_list,
        areas: area_list,
        categories: category_list,
        rules,
        gazetteer,
        centres,
        calendar,
        classifier,
        emergency,
        area_recognition,
        triage_agency,
        model,
    })
}

fn area_list_code(areas: &[Area], index: usize) -> &str {
    areas.get(index).map_or("?", |a| a.code.as_str())
}

/// The agency code no agency may have: the audience token of the public feed.
pub const RESERVED_AGENCY_CODE: &str = "public";

/// Codes are identifiers stored in events and URLs: lowercase ASCII letters, digits and `_` (so also safe as a
/// NATS subject token: no `.`, `*`, `>` or spaces).
fn checked_code(cx: &Cx<'_>, code: &Spanned<String>, what: &str) -> Res<String> {
    let c = code.get_ref();
    let ok = !c.is_empty() && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
    if !ok {
        return Err(
            cx.error_at(code.span(), format!("{what} code \"{c}\" must be lowercase ASCII letters, digits or _"))
        );
    }
    Ok(c.clone())
}

fn non_empty(cx: &Cx<'_>, value: Spanned<String>, what: &str) -> Res<String> {
    if value.get_ref().trim().is_empty() {
        return Err(cx.error_at(value.span(), format!("{what} cannot be empty")));
    }
    Ok(value.into_inner())
}

fn non_negative(cx: &Cx<'_>, value: &Spanned<f64>, what: &str) -> Res<f64> {
    let v = *value.get_ref();
    if !(v.is_finite() && v >= 0.0) {
        return Err(cx.error_at(value.span(), format!("{what} must be a number >= 0")));
    }
    Ok(v)
}

fn fraction(cx: &Cx<'_>, value: &Spanned<f64>, what: &str) -> Res<f64> {
    let v = *value.get_ref();
    if !(0.0..=1.0).contains(&v) {
        return Err(cx.error_at(value.span(), format!("{what} must be between 0 and 1")));
    }
    Ok(v)
}

fn positive(cx: &Cx<'_>, value: &Spanned<f64>, what: &str) -> Res<f64> {
    let v = *value.get_ref();
    if !(v.is_finite() && v > 0.0) {
        return Err(cx.error_at(value.span(), format!("{what} must be a number > 0")));
    }
    Ok(v)
}

fn checked_weights(cx: &Cx<'_>, weights: &Spanned<RawWeights>) -> Res<RawWeights> {
    let w = *weights.get_ref();
    let ok = [w.strong, w.medium, w.weak].iter().all(|x| x.is_finite() && *x > 0.0);
    if !ok || w.strong < w.medium || w.medium < w.weak {
        return Err(cx.error_at(weights.span(), "weights must be positive with strong >= medium >= weak"));
    }
    Ok(w)
}

/// The normalised form of a phrase, rejecting phrases with nothing left to match (only punctuation or emoji).
fn phrase_key(cx: &Cx<'_>, phrase: &str, span: Range<usize>) -> Res<String> {
    let key = classify::phrase_key(phrase);
    if key.is_empty() {
        return Err(cx.error_at(span, format!("phrase \"{phrase}\" has no letters or digits to match")));
    }
    Ok(key)
}

/// A route must name an agency; with `{area}`, the agency of every area must exist.
fn checked_route(
    cx: &Cx<'_>,
    route: &Spanned<String>,
    agencies: &HashMap<String, usize>,
    areas: &[Area],
    category: &str,
) -> Res<String> {
    let r = route.get_ref();
    if r.contains(AREA_PLACEHOLDER) {
        for area in areas {
            let code = r.replace(AREA_PLACEHOLDER, &area.code);
            if !agencies.contains_key(&code) {
                return Err(cx.error_at(
                    route.span(),
                    format!(
                        "category \"{category}\" routes to \"{r}\", but for area \"{}\" that is agency \"{code}\", which is not defined",
                        area.code
                    ),
                ));
            }
        }
    } else if !agencies.contains_key(r) {
        return Err(cx.error_at(route.span(), format!("category \"{category}\" routes to unknown agency \"{r}\"")));
    }
    Ok(r.clone())
}

/// A category's `acknowledge` or `deadline`, or an error pointing at it.
fn checked_deadline(cx: &Cx<'_>, value: &Spanned<String>, key: &str) -> Res<Deadline> {
    parse_deadline(value.get_ref()).ok_or_else(|| {
        cx.error_at(
            value.span(),
            format!(
                "{key} \"{}\" is not understood: write \"immediate\", \"N working days\", \"N working hours\", \
                 \"N hours\" or \"N minutes\"",
                value.get_ref()
            ),
        )
    })
}

/// `"immediate"`, `"N working days"`, `"N working hours"`, `"N hours"`, `"N minutes"`, or the same in Vietnamese
/// (`"ngay lập tức"`, `"N ngày làm việc"`, `"N giờ làm việc"`, `"N giờ"`, `"N phút"`); case and diacritics do not
/// matter. N is at least 1: a deadline of nothing is written "immediate".
fn parse_deadline(text: &str) -> Option<Deadline> {
    // Normalising drops punctuation: without this, "-5 minutes" would read as 5 minutes.
    if !text.trim_start().starts_with(char::is_alphanumeric) {
        return None;
    }
    let norm = classify::normalize(text);
    if norm == "immediate" || norm == "ngay lap tuc" {
        return Some(Deadline::Immediate);
    }
    let (number, unit) = norm.split_once(' ')?;
    let n: u32 = number.parse().ok()?;
    if n == 0 {
        return None;
    }
    match unit {
        "working day" | "working days" | "ngay lam viec" => Some(Deadline::WorkingDays(n)),
        "working hour" | "working hours" | "gio lam viec" => Some(Deadline::WorkingHours(n)),
        "hour" | "hours" | "gio" => Some(Deadline::Hours(n)),
        "minute" | "minutes" | "phut" => Some(Deadline::Minutes(n)),
        _ => None,
    }
}

fn build_calendar(cx: &Cx<'_>, raw: Spanned<RawCalendar>) -> Res<Calendar> {
    let raw = raw.into_inner();
    let utc_offset = parse_offset(raw.utc_offset.get_ref())
        .ok_or_else(|| cx.error_at(raw.utc_offset.span(), "utc_offset must look like \"+07:00\""))?;
    if raw.timezone.get_ref().trim().is_empty() {
        return Err(cx.error_at(raw.timezone.span(), "timezone cannot be empty"));
    }

    let mut working_days = Vec::new();
    for d in raw.working_days.get_ref() {
        let day = parse_weekday(d.get_ref()).ok_or_else(|| {
            cx.error_at(d.span(), format!("\"{}\" is not a weekday (mon, tue, wed, thu, fri, sat, sun)", d.get_ref()))
        })?;
        if working_days.contains(&day) {
            return Err(cx.error_at(d.span(), format!("\"{}\" is listed twice", d.get_ref())));
        }
        working_days.push(day);
    }
    if working_days.is_empty() {
        return Err(cx.error_at(raw.working_days.span(), "the calendar needs at least one working day"));
    }

    let mut working_hours: Vec<(Time, Time)> = Vec::new();
    for h in raw.working_hours.get_ref() {
        let (start, end) = parse_interval(h.get_ref()).ok_or_else(|| {
            cx.error_at(h.span(), format!("\"{}\" must look like \"07:30-11:30\" with start before end", h.get_ref()))
        })?;
        if let Some(&(_, last_end)) = working_hours.last()
            && start < last_end
        {
            return Err(cx.error_at(h.span(), "working hours must be in order and not overlap"));
        }
        working_hours.push((start, end));
    }
    if working_hours.is_empty() {
        return Err(cx.error_at(raw.working_hours.span(), "the calendar needs at least one working-hours interval"));
    }

    let mut fixed_holidays = Vec::new();
    for h in &raw.fixed_holidays {
        let (month, day) = parse_month_day(h.date.get_ref()).ok_or_else(|| {
            cx.error_at(h.date.span(), format!("\"{}\" must be a day of the year like \"09-02\"", h.date.get_ref()))
        })?;
        fixed_holidays.push(FixedHoliday { month, day, name: h.name.clone() });
    }

    let mut years: Vec<CalendarYear> = Vec::new();
    for y in raw.year {
        let year = i32::try_from(*y.year.get_ref())
            .ok()
            .filter(|v| (1900..=9999).contains(v))
            .ok_or_else(|| cx.error_at(y.year.span(), "year must be between 1900 and 9999"))?;
        if years.iter().any(|x| x.year == year) {
            return Err(cx.error_at(y.year.span(), format!("year {year} is listed twice")));
        }
        let holidays = expand_days(cx, &y.holidays, year)?;
        let extra_working_days = expand_days(cx, &y.extra_working_days, year)?;
        years.push(CalendarYear { year, holidays, extra_working_days });
    }
    Ok(Calendar { timezone: raw.timezone.into_inner(), utc_offset, working_days, working_hours, fixed_holidays, years })
}

/// Days of one year's list, ranges expanded; every day must fall in that year.
fn expand_days(cx: &Cx<'_>, days: &[RawDay], year: i32) -> Res<Vec<(Date, String)>> {
    let mut out = Vec::new();
    for d in days {
        let date = |s: &Spanned<String>| {
            parse_date(s.get_ref())
                .ok_or_else(|| cx.error_at(s.span(), format!("\"{}\" must be a date like \"2025-01-27\"", s.get_ref())))
        };
        let (first, last, span) = match (&d.date, &d.from, &d.to) {
            (Some(one), None, None) => (date(one)?, date(one)?, one.span()),
            (None, Some(from), Some(to)) => (date(from)?, date(to)?, from.span()),
            _ => return Err(cx.error_at(d.name.span(), "give either date = \"…\" or both from = \"…\" and to = \"…\"")),
        };
        if first > last {
            return Err(cx.error_at(span, "the range ends before it starts"));
        }
        if first.year() != year || last.year() != year {
            return Err(cx.error_at(span, format!("this day is not in year {year}")));
        }
        let mut day = first;
        loop {
            out.push((day, d.name.get_ref().clone()));
            if day == last {
                break;
            }
            match day.next_day() {
                Some(next) => day = next,
                None => break,
            }
        }
    }
    Ok(out)
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

fn parse_number<T: std::str::FromStr>(s: &str, digits: usize) -> Option<T> {
    if s.len() != digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `"HH:MM"`.
fn parse_time(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    Time::from_hms(parse_number(h, 2)?, parse_number(m, 2)?, 0).ok()
}

/// `"HH:MM-HH:MM"`, start strictly before end.
fn parse_interval(s: &str) -> Option<(Time, Time)> {
    let (a, b) = s.split_once('-')?;
    let (start, end) = (parse_time(a)?, parse_time(b)?);
    (start < end).then_some((start, end))
}

/// `"+07:00"` / `"-03:30"`.
fn parse_offset(s: &str) -> Option<UtcOffset> {
    let s = s.trim();
    let sign: i8 = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = s.get(1..)?.split_once(':')?;
    let (h, m): (i8, i8) = (parse_number(h, 2)?, parse_number(m, 2)?);
    UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

/// `"MM-DD"`; 29 February is accepted (it exists in leap years).
fn parse_month_day(s: &str) -> Option<(Month, u8)> {
    let (m, d) = s.trim().split_once('-')?;
    let month = Month::try_from(parse_number::<u8>(m, 2)?).ok()?;
    let day: u8 = parse_number(d, 2)?;
    // Validate against a leap year so every real day of the year passes.
    Date::from_calendar_date(2024, month, day).ok()?;
    Some((month, day))
}

/// `"YYYY-MM-DD"`.
fn parse_date(s: &str) -> Option<Date> {
    let mut parts = s.trim().splitn(3, '-');
    let y: i32 = parse_number(parts.next()?, 4)?;
    let m: u8 = parse_number(parts.next()?, 2)?;
    let d: u8 = parse_number(parts.next()?, 2)?;
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_agency_may_take_the_public_feeds_name_or_a_subject_breaking_code() {
        let bundled = Province::BUNDLED;
        assert!(bundled.contains("code = \"hcc\""));
        let public = Province::parse(&bundled.replacen("code = \"hcc\"", "code = \"public\"", 1), "test")
            .expect_err("an agency called public was accepted");
        assert!(public.to_string().contains("agency code \"public\" is reserved"), "{public}");
        for bad in ["po.lice", "po*", ">", "po lice"] {
            let text = bundled.replacen("code = \"hcc\"", &format!("code = \"{bad}\""), 1);
            let e = Province::parse(&text, "test").expect_err("a code that is no subject token was accepted");
            assert!(e.to_string().contains("must be lowercase ASCII letters"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_shared_location_falls_in_the_area_around_it() {
        let p = Province::bundled();
        let at = |lat, lon| p.area_at(lat, lon).map(|a| a.code.as_str());
        // The People's Committee of Thủ Dầu Một; the Sóng Thần station in Dĩ An; Phước Vĩnh in Phú Giáo.
        assert_eq!(at(10.9804, 106.6519), Some("tdm"));
        assert_eq!(at(10.9030, 106.7560), Some("dian"));
        assert_eq!(at(11.2960, 106.7990), Some("phugiao"));
        // Hồ Chí Minh City's centre and the open sea are in no area of the province.
        assert_eq!(at(10.7769, 106.7009), None);
        assert_eq!(at(10.0, 107.5), None);
        assert_eq!(at(f64::NAN, 106.7), None);
    }

    #[test]
    fn a_centre_out_of_range_is_refused_with_its_line() {
        let text = Province::BUNDLED.replacen("radius_km = 8 }", "radius_km = 0 }", 1);
        let e = Province::parse(&text, "p.toml").expect_err("radius 0");
        assert!(e.message.contains("radius_km"), "{e}");
    }

    #[test]
    fn bundled_config_parses() {
        let p = Province::parse(Province::BUNDLED, "province.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.triage_agency().code, "hotline_desk");
        assert_eq!(p.areas().len(), 9);
        assert_eq!(p.categories().len(), 15);
        assert_eq!(p.category("emergency_fire").map(|c| c.deadline), Some(Deadline::Immediate));
        assert_eq!(p.category("land").map(|c| c.deadline), Some(Deadline::WorkingDays(10)));
        assert_eq!(p.category("land").map(|c| c.acknowledge), Some(Deadline::WorkingHours(4)));
        assert_eq!(p.category("electricity").map(|c| c.acknowledge), Some(Deadline::WorkingHours(1)));
        assert_eq!(p.category("emergency_fire").map(|c| c.acknowledge), Some(Deadline::Immediate));
        assert_eq!(p.emergency.immediate_acknowledge, Deadline::Minutes(5));
        assert_eq!(p.emergency.immediate_deadline, Deadline::Minutes(60));
        assert!(
            p.categories()
                .iter()
                .all(|c| !c.emergency || (c.acknowledge.is_wall_clock() && c.deadline.is_wall_clock()))
        );
        assert_eq!(p.agency_for("security_order", Some("dian")).map(|a| a.code.as_str()), Some("police_dian"));
        assert_eq!(p.agency_for("security_order", None).map(|a| a.code.as_str()), Some("police"));
        assert_eq!(p.agency_for("construction_urban", None).map(|a| a.code.as_str()), Some("doc"));
        assert_eq!(p.resolve_area("Dĩ An").map(|a| a.code.as_str()), Some("dian"));
        assert_eq!(p.resolve_area("bac tan uyen").map(|a| a.code.as_str()), Some("bactanuyen"));
        assert!(p.calendar.working_hours.len() == 2);
    }

    #[test]
    fn calendar_knows_weekends_and_holidays() {
        let p = Province::bundled();
        let day =
            |y, m, d| Date::from_calendar_date(y, Month::try_from(m).unwrap_or(Month::January), d).unwrap_or(Date::MIN);
        assert!(p.calendar.is_working_day(day(2025, 3, 12))); // a Wednesday
        assert!(!p.calendar.is_working_day(day(2025, 3, 15))); // a Saturday
        assert!(!p.calendar.is_working_day(day(2025, 9, 2))); // National Day, fixed
        assert!(!p.calendar.is_working_day(day(2025, 1, 29))); // Tết, published for 2025
        assert!(p.calendar.has_year(2025));
    }

    #[test]
    fn deadlines_in_english_and_vietnamese() {
        assert_eq!(parse_deadline("immediate"), Some(Deadline::Immediate));
        assert_eq!(parse_deadline("Ngay lập tức"), Some(Deadline::Immediate));
        assert_eq!(parse_deadline("3 working days"), Some(Deadline::WorkingDays(3)));
        assert_eq!(parse_deadline("1 working day"), Some(Deadline::WorkingDays(1)));
        assert_eq!(parse_deadline("5 ngày làm việc"), Some(Deadline::WorkingDays(5)));
        assert_eq!(parse_deadline("24 hours"), Some(Deadline::Hours(24)));
        assert_eq!(parse_deadline("4 working hours"), Some(Deadline::WorkingHours(4)));
        assert_eq!(parse_deadline("1 giờ làm việc"), Some(Deadline::WorkingHours(1)));
        assert_eq!(parse_deadline("2 giờ"), Some(Deadline::Hours(2)));
        assert_eq!(parse_deadline("5 minutes"), Some(Deadline::Minutes(5)));
        assert_eq!(parse_deadline("30 phút"), Some(Deadline::Minutes(30)));
        assert_eq!(parse_deadline("1 minute"), Some(Deadline::Minutes(1)));
        assert_eq!(parse_deadline("soon"), None);
        assert_eq!(parse_deadline("0 hours"), None);
        assert_eq!(parse_deadline("0 minutes"), None);
        assert_eq!(parse_deadline("-5 minutes"), None);
        assert_eq!(parse_deadline("99999999999 minutes"), None);
    }

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(line_column(text, 12), (2, 6));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
