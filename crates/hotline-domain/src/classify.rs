//! The explainable, rule-based router: text normalisation (Vietnamese diacritics, SMS abbreviations), phrase
//! matching against the province's vocabulary, emergency detection, area recognition and routing.
//!
//! Everything a decision used is returned in [`RouteDecision::matched`], so an operator can see why a petition
//! went where it went, and an admin can fix the vocabulary in `province.toml` instead of the code.
//!
//! How text is matched: it is cut into words (letters and digits), lowercased, SMS abbreviations are expanded
//! ("ko" → "không"), and each word keeps two forms: without diacritics ("khong") and with them. A config phrase
//! matches a run of whole words when the diacritic-free forms are equal and, where the citizen did type
//! diacritics, they agree too. So "mat dien" (an SMS without accents) matches "mất điện", but "đang chạy" (running)
//! does not match "đang cháy" (burning): the accents the citizen typed are respected, missing ones are forgiven.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::province::{
    AREA_PLACEHOLDER, Area, AreaPlaces, AreaRecognitionSettings, Category, CategoryRules, ClassifierSettings,
    EmergencySettings, Province, resolve_route,
};

/// What to route: the petition's text and whatever its channel already knew.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteRequest<'a> {
    pub text: &'a str,
    /// A category code the channel gave (validated by the caller; an unknown code is ignored).
    pub category: Option<&'a str>,
    /// An area code the channel gave (an area name is accepted too; an unknown one is ignored and the area is
    /// read from the text).
    pub area: Option<&'a str>,
}

/// Where a petition goes and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteDecision {
    /// `None`: needs triage by the hotline desk.
    pub category: Option<String>,
    /// `None`: needs triage (the caller sends it to [`Province::triage_agency`]).
    pub agency: Option<String>,
    /// Area code, given or recognised from the text.
    pub area: Option<String>,
    /// Dispatch at once: emergency detected in the text, or an emergency category given by the channel.
    pub emergency: bool,
    /// 0.0..=1.0; see [`Province::route`] for what it means.
    pub confidence: f64,
    /// Every phrase and rule that contributed: the explanation.
    pub matched: Vec<Matched>,
    /// English sentence when category or agency is `None`.
    pub triage_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matched {
    pub kind: MatchKind,
    /// Category code (for `Category`, `Emergency` and `Rule`) or area code (for `Area`).
    pub code: String,
    /// The config phrase that matched, or a description of the rule.
    pub phrase: String,
    pub weight: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    Category,
    Emergency,
    Area,
    Rule,
}

/// Lowercase, strip Vietnamese diacritics (đ → d), expand common SMS abbreviations, and collapse whitespace and
/// punctuation to single spaces. `"Mất điện, ko có đc!!"` → `"mat dien khong co duoc"`.
pub fn normalize(text: &str) -> String {
    let tokens = tokenize(text);
    let mut out = String::with_capacity(text.len());
    for t in &tokens {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&t.word.fold);
    }
    out
}

/// A comparable form of a config phrase (diacritics kept), for spotting duplicates; empty when the phrase has
/// nothing to match.
pub(crate) fn phrase_key(phrase: &str) -> String {
    let words = phrase_words(phrase);
    let keys: Vec<&str> = words.iter().map(|w| w.key.as_str()).collect();
    keys.join(" ")
}

// ---------------------------------------------------------------------------------------------------------------
// Words.

/// One word in its two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    /// Lowercase, no diacritics, đ → d: what is compared first.
    fold: String,
    /// Lowercase with diacritics, tone mark moved to the end so "hoà" and "hòa" agree.
    key: String,
    /// A petition's word typed in plain ASCII: it may stand for any diacritics ("chay": cháy, chạy, chày...).
    /// Config phrases are never plain: their spelling is exact ("dao", a knife, is not "đạo").
    plain: bool,
}

/// The five Vietnamese tone marks (as combining characters). The other marks (breve, circumflex, horn) change
/// the vowel itself and stay in place.
fn is_tone_mark(c: char) -> bool {
    matches!(c, '\u{300}' | '\u{301}' | '\u{303}' | '\u{309}' | '\u{323}')
}

impl Word {
    fn new(lower: &str, from_petition: bool) -> Word {
        let fold: String =
            lower.nfd().filter(|c| !is_combining_mark(*c)).map(|c| if c == 'đ' { 'd' } else { c }).collect();
        let mut tone = None;
        let mut key: String = lower
            .nfd()
            .filter(|&c| {
                if is_tone_mark(c) {
                    tone = Some(c);
                    false
                } else {
                    true
                }
            })
            .collect();
        key.extend(tone);
        Word { fold, key, plain: from_petition && lower.is_ascii() }
    }

    /// Does this word of a petition match `phrase`'s word? Diacritics count when the citizen typed them.
    fn matches(&self, phrase: &Word) -> bool {
        self.fold == phrase.fold && (self.plain || self.key == phrase.key)
    }

    /// Matched a phrase word that has diacritics only because this word was typed without them.
    fn blind_to(&self, phrase: &Word) -> bool {
        self.plain && phrase.key != phrase.fold
    }
}

/// A word of a petition and the sentence it is in (phrases do not match across sentences).
#[derive(Debug, Clone)]
struct Token {
    word: Word,
    sentence: u32,
    /// Sentences cut further at commas and colons: `[emergency] other_readings` do not run across them.
    clause: u32,
}

/// SMS and administrative abbreviations that citizens type, mapped to the words they stand for. Language facts,
/// not province facts, so they live here rather than in the config. Only unambiguous ones: "hs" (học sinh or hồ
/// sơ) and "đk" (đăng ký or được) are left alone.
fn abbreviation(word: &str) -> Option<&'static str> {
    Some(match word {
        "ko" | "k" | "hok" | "hông" | "kh" | "khg" | "k0" | "kô" | "hk" | "khum" => "không",
        "dc" | "đc" | "đươc" | "dduoc" => "được",
        "j" | "ji" => "gì",
        "ng" | "ngừoi" => "người",
        "ngta" => "người ta",
        "bn" | "bnhieu" => "bao nhiêu",
        "vs" => "với",
        "ms" => "mới",
        "nc" => "nước",
        "nhìu" | "nhiu" => "nhiều",
        "bít" | "bik" => "biết",
        "hnay" => "hôm nay",
        "hqua" => "hôm qua",
        "trc" => "trước",
        "ntn" => "như thế nào",
        "mng" => "mọi người",
        "lun" => "luôn",
        "wa" | "qá" => "quá",
        "ktra" => "kiểm tra",
        "sdt" | "sđt" => "số điện thoại",
        "cskh" => "chăm sóc khách hàng",
        "cs" => "cảnh sát",
        "csgt" => "cảnh sát giao thông",
        "cand" => "công an nhân dân",
        "ubnd" => "ủy ban nhân dân",
        "hđnd" | "hdnd" => "hội đồng nhân dân",
        "tnxh" => "tệ nạn xã hội",
        "tngt" => "tai nạn giao thông",
        "tnạn" | "tnan" => "tai nạn",
        "pccc" => "phòng cháy chữa cháy",
        "cnch" => "cứu nạn cứu hộ",
        "attp" => "an toàn thực phẩm",
        "vsattp" => "vệ sinh an toàn thực phẩm",
        "bhxh" => "bảo hiểm xã hội",
        "bhyt" => "bảo hiểm y tế",
        "bhtn" => "bảo hiểm thất nghiệp",
        "gplx" => "giấy phép lái xe",
        "gpxd" => "giấy phép xây dựng",
        "gpkd" => "giấy phép kinh doanh",
        "cccd" => "căn cước công dân",
        "cmnd" => "chứng minh nhân dân",
        "gcn" => "giấy chứng nhận",
        "qsdd" | "qsdđ" => "quyền sử dụng đất",
        "tthc" => "thủ tục hành chính",
        "dvc" => "dịch vụ công",
        "kcn" => "khu công nghiệp",
        "ccn" => "cụm công nghiệp",
        "kdc" => "khu dân cư",
        "kp" => "khu phố",
        "tp" => "thành phố",
        "tx" => "thị xã",
        "cty" => "công ty",
        "bv" => "bệnh viện",
        "bs" => "bác sĩ",
        "gv" => "giáo viên",
        "thcs" => "trung học cơ sở",
        "thpt" => "trung học phổ thông",
        "pls" | "plz" => "please",
        _ => return None,
    })
}

/// Road-number prefixes glued to their number ("QL13", "ĐT743").
fn road_prefix(word: &str) -> Option<(&'static str, &str)> {
    for (prefix, expansion) in [("ql", "quốc lộ"), ("dt", "đường tỉnh"), ("đt", "đường tỉnh")] {
        if let Some(rest) = word.strip_prefix(prefix)
            && rest.starts_with(|c: char| c.is_ascii_digit())
        {
            return Some((expansion, rest));
        }
    }
    None
}

/// Punctuation that ends a sentence when followed by a non-word character ("xong. Tôi", not "1.5" or "TP.HCM").
fn ends_sentence(c: char, next: Option<char>) -> bool {
    match c {
        '\n' | '\r' | '…' => true,
        '.' | '!' | '?' | ';' => next.is_none_or(|n| !is_word_char(n)),
        _ => false,
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Words of a petition, with abbreviations expanded and sentence numbers.
fn tokenize(text: &str) -> Vec<Token> {
    split_words(text, true)
}

/// Words of a petition (`from_petition`) or of a config phrase.
fn split_words(text: &str, from_petition: bool) -> Vec<Token> {
    // NFC first: some phones send decomposed Vietnamese, whose combining marks would otherwise split words.
    let chars: Vec<char> = text.nfc().collect();
    let mut raw: Vec<(String, u32, u32)> = Vec::new(); // (word, sentence, clause)
    let mut current = String::new();
    let (mut sentence, mut clause) = (0u32, 0u32);
    for (i, &c) in chars.iter().enumerate() {
        if is_word_char(c) {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            raw.push((current.to_lowercase(), sentence, clause));
            current.clear();
        }
        let next = chars.get(i + 1).copied();
        if ends_sentence(c, next) {
            sentence = sentence.saturating_add(1);
        }
        if ends_sentence(c, next) || (matches!(c, ',' | ':') && next.is_none_or(|n| !is_word_char(n))) {
            clause = clause.saturating_add(1);
        }
    }
    if !current.is_empty() {
        raw.push((current.to_lowercase(), sentence, clause));
    }

    let mut tokens = Vec::with_capacity(raw.len() + raw.len() / 4);
    let mut push = |words: &str, sentence: u32, clause: u32| {
        for w in words.split(' ').filter(|w| !w.is_empty()) {
            tokens.push(Token { word: Word::new(w, from_petition), sentence, clause });
        }
    };
    for (i, (word, sentence, clause)) in raw.iter().enumerate() {
        let (sentence, clause) = (*sentence, *clause);
        let next_is_number =
            raw.get(i + 1).is_some_and(|(w, s, _)| *s == sentence && w.starts_with(|c: char| c.is_ascii_digit()));
        if let Some((expansion, number)) = road_prefix(word) {
            push(expansion, sentence, clause);
            push(number, sentence, clause);
        } else if matches!(word.as_str(), "dt" | "đt") {
            // "ĐT 743" is a provincial road; a lone "đt" is a phone.
            push(if next_is_number { "đường tỉnh" } else { "điện thoại" }, sentence, clause);
        } else if word == "ql" && next_is_number {
            push("quốc lộ", sentence, clause);
        } else if let Some(expansion) = abbreviation(word) {
            push(expansion, sentence, clause);
        } else {
            push(word, sentence, clause);
        }
    }
    tokens
}

/// The words of a config phrase (normalised like a petition, sentence marks ignored).
fn phrase_words(phrase: &str) -> Vec<Word> {
    split_words(phrase, false).into_iter().map(|t| t.word).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// The compiled model.

/// What a phrase is evidence of.
#[derive(Debug, Clone, PartialEq)]
enum Role {
    /// Ordinary category evidence.
    Category {
        category: usize,
        weight: f64,
    },
    /// A signal of an emergency of that (emergency) category.
    Emergency {
        category: usize,
        weight: f64,
    },
    /// Masks words from category scoring (salutations...).
    Ignore,
    Urgency,
    /// Masks words from emergency detection ("cháy hàng").
    NotEmergency,
    Negation,
    Past,
    Present,
    /// Gives an ambiguous word typed without accents its ordinary meaning ("xe chạy": not "xe cháy").
    Reading,
    /// What burns ("nhà", "cây xăng"): settles an ambiguous word next to it, and says what a fire is about.
    Context,
    /// A place name: of one area, or of several (then ambiguous). `own_name`: the area's own name or alias.
    Place {
        areas: Vec<usize>,
        own_name: bool,
    },
    StreetWord,
}

#[derive(Debug, Clone)]
struct Entry {
    words: Vec<Word>,
    role: Role,
    /// As written in the config, for explanations.
    text: String,
    /// Per word: listed in `ambiguous_without_accents`, so a match typed without accents is less sure.
    fragile: Vec<bool>,
    /// A signal listed in `settled_by_context`: what burns nearby settles it and says what it is about.
    contextual: bool,
}

/// The province's phrases, indexed by their first word, built once when the config is parsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Model {
    entries: Vec<Entry>,
    /// Diacritic-free first word → entries starting with it. Keeps matching linear in the text length.
    index: HashMap<String, Vec<usize>>,
    /// Keys of the words in `[emergency] ambiguous_without_accents`.
    ambiguous: HashSet<String>,
    /// Keys of the signals in `[emergency] settled_by_context`.
    contextual: HashSet<String>,
    /// Words in the longest phrase: how far back an overlapping hit can start.
    max_len: usize,
}

/// A phrase found in the text: entry and the half-open word range.
#[derive(Debug, Clone, Copy)]
struct Hit {
    entry: usize,
    start: usize,
    end: usize,
}

impl Hit {
    fn len(&self) -> usize {
        self.end - self.start
    }

    /// Shares a word with a longer hit ("giao thông" in "tai nạn giao thông"; "cấp giấy" across "cấp giấy chứng
    /// nhận quyền sử dụng đất"): each word belongs to the longest phrase it is part of.
    fn shadowed_by(&self, other: &Hit) -> bool {
        other.len() > self.len() && other.start < self.end && self.start < other.end
    }
}

/// The hits (sorted by start, as [`Model::find`] returns them) starting in `from..to`: the only ones that can
/// overlap a given hit, so checks stay linear in the text rather than quadratic.
fn starting_in(hits: &[Hit], from: usize, to: usize) -> &[Hit] {
    let lo = hits.partition_point(|h| h.start < from);
    let hi = hits.partition_point(|h| h.start < to).max(lo);
    &hits[lo..hi]
}

impl Model {
    pub(crate) fn build(
        categories: &[Category],
        rules: &[CategoryRules],
        areas: &[Area],
        gazetteer: &[AreaPlaces],
        classifier: &ClassifierSettings,
        emergency: &EmergencySettings,
        recognition: &AreaRecognitionSettings,
    ) -> Model {
        let mut model = Model {
            ambiguous: emergency
                .ambiguous_without_accents
                .iter()
                .flat_map(|w| phrase_words(w))
                .map(|w| w.key)
                .collect(),
            contextual: emergency.settled_by_context.iter().map(|p| phrase_key(p)).collect(),
            ..Model::default()
        };
        for (index, (category, rules)) in categories.iter().zip(rules).enumerate() {
            for p in &rules.phrases {
                let role = if category.emergency {
                    Role::Emergency { category: index, weight: p.weight }
                } else {
                    Role::Category { category: index, weight: p.weight }
                };
                model.add(&p.phrase, role);
            }
        }
        let lists: [(&[String], Role); 9] = [
            (&classifier.ignore, Role::Ignore),
            (&emergency.urgency, Role::Urgency),
            (&emergency.not_emergency, Role::NotEmergency),
            (&emergency.negations, Role::Negation),
            (&emergency.past, Role::Past),
            (&emergency.present, Role::Present),
            (&emergency.other_readings, Role::Reading),
            (&emergency.context, Role::Context),
            (&recognition.street_words, Role::StreetWord),
        ];
        for (list, role) in lists {
            for p in list {
                model.add(p, role.clone());
            }
        }

        // One entry per distinct place name, listing every area that has it (two areas: ambiguous).
        let mut places: Vec<(String, String, Vec<usize>, bool)> = Vec::new();
        let mut add_place = |name: &str, area: usize, own_name: bool| {
            let key = phrase_key(name);
            match places.iter_mut().find(|(k, ..)| *k == key) {
                Some((_, _, list, own)) => {
                    if !list.contains(&area) {
                        list.push(area);
                    }
                    *own |= own_name;
                }
                None => places.push((key, name.to_owned(), vec![area], own_name)),
            }
        };
        for (index, (area, names)) in areas.iter().zip(gazetteer).enumerate() {
            add_place(&area.name, index, true);
            for alias in &names.aliases {
                add_place(alias, index, true);
            }
            for place in names.places.iter().chain(&names.landmarks) {
                add_place(place, index, false);
            }
        }
        for (_, name, areas, own_name) in places {
            model.add(&name, Role::Place { areas, own_name });
        }
        model
    }

    fn add(&mut self, phrase: &str, role: Role) {
        let words = phrase_words(phrase);
        let Some(first) = words.first() else { return };
        let first = first.fold.clone();
        let fragile = words.iter().map(|w| self.ambiguous.contains(&w.key)).collect();
        let key: Vec<&str> = words.iter().map(|w| w.key.as_str()).collect();
        let contextual = matches!(role, Role::Emergency { .. }) && self.contextual.contains(&key.join(" "));
        self.index.entry(first).or_default().push(self.entries.len());
        self.max_len = self.max_len.max(words.len());
        self.entries.push(Entry { words, role, text: phrase.to_owned(), fragile, contextual });
    }

    /// Drops hits sharing a word with a longer hit of the same family, so a long phrase is not counted again
    /// through the shorter phrases in it.
    fn longest_only(&self, hits: Vec<Hit>) -> Vec<Hit> {
        let kept: Vec<bool> = hits
            .iter()
            .map(|h| !starting_in(&hits, h.start.saturating_sub(self.max_len), h.end).iter().any(|o| h.shadowed_by(o)))
            .collect();
        hits.into_iter().zip(kept).filter_map(|(h, k)| k.then_some(h)).collect()
    }

    /// Within one of `masks` (equal spans included): "fire" inside "fire safety". A longer phrase that merely
    /// overlaps a mask still counts ("số điện thoại" is not hidden by ignoring "điện thoại").
    fn masked(&self, hit: &Hit, masks: &[Hit]) -> bool {
        starting_in(masks, hit.start.saturating_sub(self.max_len), hit.start + 1)
            .iter()
            .any(|m| m.start <= hit.start && hit.end <= m.end)
    }

    /// For emergency detection a mask claims its words: a signal is masked when it lies within a mask, starts
    /// inside one ("phòng cháy chữa cháy quán karaoke" holds no "cháy quán"), or shares with one the word it rests
    /// on ("nhà bị cháy xém": "cháy xém" = scorched). A signal containing a whole mask is more specific than the
    /// mask and still counts ("đốt cháy nhà" despite "đốt cháy").
    fn claimed(&self, hit: &Hit, masks: &[Hit]) -> bool {
        let fragile = &self.entries[hit.entry].fragile;
        starting_in(masks, hit.start.saturating_sub(self.max_len), hit.end).iter().any(|m| {
            let overlap = m.start < hit.end && hit.start < m.end;
            let contains_mask = hit.start <= m.start && m.end <= hit.end;
            let shares_fragile = (m.start.max(hit.start)..m.end.min(hit.end))
                .any(|p| fragile.get(p - hit.start).copied().unwrap_or(false));
            overlap && !contains_mask && (m.start <= hit.start || shares_fragile)
        })
    }

    /// Every phrase occurrence in the text, whole words only, within one sentence.
    fn find(&self, tokens: &[Token]) -> Vec<Hit> {
        let mut hits = Vec::new();
        for (start, token) in tokens.iter().enumerate() {
            let Some(candidates) = self.index.get(&token.word.fold) else { continue };
            for &entry in candidates {
                let words = &self.entries[entry].words;
                let end = start + words.len();
                let Some(span) = tokens.get(start..end) else { continue };
                let ok = span.iter().zip(words).all(|(t, w)| t.sentence == token.sentence && t.word.matches(w));
                if ok {
                    hits.push(Hit { entry, start, end });
                }
            }
        }
        hits
    }

    /// The hit matched only because the citizen typed no diacritics on a word of the phrase that has them
    /// (`only_fragile`: on a word listed in `ambiguous_without_accents`).
    fn blind(&self, tokens: &[Token], hit: &Hit, only_fragile: bool) -> bool {
        let entry = &self.entries[hit.entry];
        let span = tokens.get(hit.start..hit.end).unwrap_or_default();
        span.iter()
            .zip(&entry.words)
            .zip(&entry.fragile)
            .any(|((t, w), &fragile)| t.word.blind_to(w) && (fragile || !only_fragile))
    }

    /// Text positions of the hit's ambiguous words (`ambiguous_without_accents`) typed without accents.
    fn blind_fragile<'a>(&'a self, tokens: &'a [Token], hit: &Hit) -> impl Iterator<Item = usize> + 'a {
        let entry = &self.entries[hit.entry];
        let span = tokens.get(hit.start..hit.end).unwrap_or_default();
        let start = hit.start;
        span.iter()
            .zip(&entry.words)
            .zip(&entry.fragile)
            .enumerate()
            .filter(|(_, ((t, w), fragile))| **fragile && t.word.blind_to(w))
            .map(move |(i, _)| start + i)
    }

    /// A signal listed in `settled_by_context`, typed with or without accents.
    fn contextual(&self, hit: &Hit) -> bool {
        self.entries[hit.entry].contextual
    }
}

/// Words strictly between two hits (0 when they touch or overlap).
fn gap(a: &Hit, b: &Hit) -> usize {
    b.start.saturating_sub(a.end).max(a.start.saturating_sub(b.end))
}

/// `x / (x + half)`: 0 at 0, 0.5 at `half`, approaching 1.
fn saturate(x: f64, half: f64) -> f64 {
    if x <= 0.0 || half <= 0.0 { 0.0 } else { (x / (x + half)).clamp(0.0, 1.0) }
}

/// How one of `[emergency] other_readings` lies over a signal's ambiguous word typed without accents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Starts inside the signal after its first word and runs past its end. Over a signal whose own words fit no
    /// other reading, they came first and fix the meaning: it is ignored ("boc chay tren QL13" is "bốc cháy
    /// trên", not "chạy trên"). With a `SameLetters` or `Inner` reading it tips the balance the other way ("dang
    /// chay on qua" is "đang chạy ồn quá").
    Later,
    /// Lies within the signal without being all of it ("bị chảy" in "nhà bị cháy"): alone, no matter.
    Inner,
    /// Exactly the signal's words ("dang chay": "đang chạy" or "đang cháy"): the signal is ambiguous.
    SameLetters,
    /// Starts before the signal ("xe chay lon": "xe chạy"), or starts with it and runs past ("chay qua"): the
    /// word means the other thing and the signal does not count ("xe chay lon xon" is no "cháy lớn").
    Otherwise,
}

/// The outcome of emergency detection.
#[derive(Clone, Copy)]
struct EmergencyFinding {
    category: usize,
    score: f64,
}

impl Province {
    /// Decides category, agency, area and emergency for a petition, with the evidence.
    ///
    /// * Category: the channel's, if given (confidence 1.0). Otherwise each ordinary category scores the sum of
    ///   the weights of its distinct phrases found in the text (a phrase sharing words with a longer matched
    ///   phrase does not count; `[classifier] ignore` phrases count for nothing; a one-word phrase found only
    ///   because the citizen typed no accents counts `unaccented_single_word_factor` of its weight, unless another
    ///   phrase of its category, not itself such a lone word, is in the same sentence). The best category wins
    ///   when its score reaches `min_score` and the confidence reaches `min_confidence`, where
    ///   **confidence = lead / (lead + confidence_margin)**, lead being the best score minus the runner-up's:
    ///   0 for a tie, 0.5 when the lead equals `confidence_margin`, approaching 1 as the lead grows. Below
    ///   either threshold, category and agency are `None` and `triage_reason` says why.
    /// * Emergency: each emergency category sums its signals, skipping those claimed by a `not_emergency`
    ///   phrase, right after a negation, or in a sentence about the past. A signal resting on a word of
    ///   `ambiguous_without_accents` typed without accents does not count when an `other_readings` phrase over
    ///   that word starts before the signal or runs past it from its start ("xe chay lon xon"); when it is that
    ///   word alone or spelt exactly like an `other_readings` phrase ("dang chay"), it counts `unaccented_factor`
    ///   of its weight unless its sentence settles it (a `context` word within `context_window` words, for the
    ///   signals of `settled_by_context`; or a signal of its category that is not ambiguous). Add `context_bonus`
    ///   once when a sure signal of `settled_by_context` has a `context` word within `context_window` words, and
    ///   `urgency_bonus` once if an urgency phrase appears. Reaching `threshold` flags the petition
    ///   and routes it to that emergency category, overriding the channel's category and the classifier;
    ///   confidence is then score / (score + threshold).
    /// * Area: the channel's, else the area whose names, wards and landmarks the text mentions most (a tie
    ///   leaves it unknown). A name shared by two areas counts only with one of those areas' names nearby; a
    ///   name right after a street word ("đường Bạch Đằng") counts `street_weight`; a name read only thanks to
    ///   missing accents whose words also belong to a longer category phrase ("tan long duong") is ignored.
    /// * Agency: the category's route, with `{area}` filled in, or `route_without_area` when the area is unknown.
    pub fn route(&self, req: &RouteRequest<'_>) -> RouteDecision {
        let tokens = tokenize(req.text);
        let hits = self.model.find(&tokens);
        let entries = &self.model.entries;
        let mut matched = Vec::new();

        // Category evidence is needed by the classifier and, to spot place names that are really words, by the
        // area recogniser: gather it once.
        let ignored: Vec<Hit> = hits.iter().copied().filter(|h| entries[h.entry].role == Role::Ignore).collect();
        let evidence = self.model.longest_only(
            hits.iter()
                .copied()
                .filter(|h| matches!(entries[h.entry].role, Role::Category { .. }) && !self.model.masked(h, &ignored))
                .collect(),
        );

        let emergency = self.detect_emergency(&tokens, &hits, &mut matched);
        let area = self.area_of(req.area, &tokens, &hits, &evidence, &mut matched);
        let given = req.category.and_then(|c| self.categories.iter().position(|x| x.code == c));

        let (category, confidence, triage_reason) = match (emergency, given) {
            (Some(found), _) => {
                let code = &self.categories[found.category].code;
                if let Some(g) = given.filter(|&g| g != found.category) {
                    let why = format!("emergency overrides the channel's category \"{}\"", self.categories[g].code);
                    matched.push(rule(code, why));
                }
                (Some(found.category), saturate(found.score, self.emergency.threshold), None)
            }
            (None, Some(g)) => {
                matched.push(rule(&self.categories[g].code, "category given by the channel".to_owned()));
                (Some(g), 1.0, None)
            }
            (None, None) => self.classify(&tokens, &evidence, &mut matched),
        };

        let mut agency = None;
        if let Some(c) = category {
            let rules = &self.rules[c];
            let area_code = area.map(|a| self.areas[a].code.as_str());
            if let Some(code) = resolve_route(rules, area_code) {
                let how = match (rules.route.contains(AREA_PLACEHOLDER), area_code) {
                    (false, _) => format!("route {code}"),
                    (true, Some(a)) => format!("route {} with area {a} → {code}", rules.route),
                    (true, None) => format!("route {} without a known area → {code}", rules.route),
                };
                matched.push(rule(&rules.category, how));
                agency = Some(code);
            }
        }
        let triage_reason = triage_reason
            .or_else(|| (category.is_none() || agency.is_none()).then(|| "No category could be decided.".to_owned()));
        RouteDecision {
            category: category.map(|c| self.categories[c].code.clone()),
            agency,
            area: area.map(|a| self.areas[a].code.clone()),
            emergency: emergency.is_some() || given.is_some_and(|g| self.categories[g].emergency),
            confidence,
            matched,
            triage_reason,
        }
    }

    /// The ordinary classifier over the category evidence: (category, confidence, triage reason).
    fn classify(
        &self,
        tokens: &[Token],
        evidence: &[Hit],
        matched: &mut Vec<Matched>,
    ) -> (Option<usize>, f64, Option<String>) {
        let entries = &self.model.entries;
        let mut weighted: Vec<(usize, usize, f64)> = Vec::new(); // (entry, category, weight)
        for h in evidence {
            let Role::Category { category, weight } = entries[h.entry].role else { continue };
            let unsure = entries[h.entry].words.len() == 1
                && self.model.blind(tokens, h, false)
                && !self.corroborated(tokens, h, category, evidence);
            let weight = if unsure { weight * self.classifier.unaccented_single_word_factor } else { weight };
            weighted.push((h.entry, category, weight));
        }
        let (counted, scores) = score_by_category(weighted, self.categories.len());
        let mut order: Vec<usize> = (0..scores.len()).filter(|&c| scores[c] > 0.0).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));

        // Explain: the phrases of every category that scored, best category first.
        for &c in &order {
            for &(entry, category, weight) in counted.iter().filter(|x| x.1 == c) {
                matched.push(Matched {
                    kind: MatchKind::Category,
                    code: self.categories[category].code.clone(),
                    phrase: entries[entry].text.clone(),
                    weight,
                });
            }
        }

        let Some(&best) = order.first() else {
            return (None, 0.0, Some("No phrase of any category was found in the text.".to_owned()));
        };
        let runner_up = order.get(1).map_or(0.0, |&c| scores[c]);
        let confidence = saturate(scores[best] - runner_up, self.classifier.confidence_margin);
        let name = &self.categories[best].code;
        if scores[best] < self.classifier.min_score {
            let reason = format!(
                "The best category, {name}, scored {:.1}, below the minimum of {:.1}.",
                scores[best], self.classifier.min_score
            );
            return (None, confidence, Some(reason));
        }
        if confidence < self.classifier.min_confidence {
            let second = order.get(1).map_or("nothing", |&c| self.categories[c].code.as_str());
            let reason = format!(
                "Too close to call between {name} ({:.1}) and {second} ({runner_up:.1}): confidence {confidence:.2} \
                 is below {:.2}.",
                scores[best], self.classifier.min_confidence
            );
            return (None, confidence, Some(reason));
        }
        (Some(best), confidence, None)
    }

    /// A one-word phrase read only thanks to missing accents is backed by another phrase of its category in the
    /// same sentence, one that is not itself such a lone word: "lat" next to "xe công nông" is "lật" (overturned).
    fn corroborated(&self, tokens: &[Token], hit: &Hit, category: usize, evidence: &[Hit]) -> bool {
        let entries = &self.model.entries;
        let sentence = |h: &Hit| tokens.get(h.start).map_or(0, |t| t.sentence);
        evidence.iter().any(|o| {
            o.entry != hit.entry
                && sentence(o) == sentence(hit)
                && matches!(entries[o.entry].role, Role::Category { category: c, .. } if c == category)
                && !(entries[o.entry].words.len() == 1 && self.model.blind(tokens, o, false))
        })
    }

    /// Emergency detection; records the signals it counted.
    fn detect_emergency(&self, tokens: &[Token], hits: &[Hit], matched: &mut Vec<Matched>) -> Option<EmergencyFinding> {
        let entries = &self.model.entries;
        let settings = &self.emergency;
        let role_hits = |want: fn(&Role) -> bool| hits.iter().copied().filter(move |h| want(&entries[h.entry].role));

        let masks: Vec<Hit> = role_hits(|r| *r == Role::NotEmergency).collect();
        let sentence = |h: &Hit| tokens.get(h.start).map_or(0, |t| t.sentence);
        let past: HashSet<u32> = role_hits(|r| *r == Role::Past).map(|h| sentence(&h)).collect();
        let present: HashSet<u32> = role_hits(|r| *r == Role::Present).map(|h| sentence(&h)).collect();
        let in_past = |h: &Hit| past.contains(&sentence(h)) && !present.contains(&sentence(h));
        // A lone negation syllable typed without accents is ignored: "so" is more often "số" than "sợ".
        let negations: Vec<Hit> = role_hits(|r| *r == Role::Negation)
            .filter(|n| !(entries[n.entry].words.len() == 1 && self.model.blind(tokens, n, false)))
            .collect();
        let negated = |h: &Hit| {
            let from = h.start.saturating_sub(settings.negation_window + self.model.max_len);
            starting_in(&negations, from, h.start)
                .iter()
                // Starting before the signal and ending at most `negation_window` words before it; a negation may
                // also end inside it ("sợ bị" + "bị điện giật").
                .any(|n| {
                    n.start < h.start
                        && h.start.saturating_sub(n.end) <= settings.negation_window
                        && sentence(n) == sentence(h)
                })
        };

        // How the readings lie over the signal's ambiguous words typed without accents (none for a signal typed
        // with accents).
        // A reading does not run across a comma: "cong trinh bi sap, co nguoi ben duoi" holds no "sắp có".
        let clause = |p: usize| tokens.get(p).map_or(0, |t| t.clause);
        let readings: Vec<Hit> =
            role_hits(|r| *r == Role::Reading).filter(|r| clause(r.start) == clause(r.end.saturating_sub(1))).collect();
        let readings_of = |h: &Hit| {
            let blind: Vec<usize> = self.model.blind_fragile(tokens, h).collect();
            starting_in(&readings, h.start.saturating_sub(self.model.max_len), h.end)
                .iter()
                .filter(|r| blind.iter().any(|&p| r.start <= p && p < r.end))
                .map(|r| {
                    if (r.start, r.end) == (h.start, h.end) {
                        Reading::SameLetters
                    } else if r.start < h.start || (r.start == h.start && h.end < r.end) {
                        Reading::Otherwise
                    } else if r.end <= h.end {
                        Reading::Inner
                    } else {
                        Reading::Later
                    }
                })
                .collect::<Vec<Reading>>()
        };
        // Read otherwise: a reading starts before the signal or runs past it from its start; or the signal's own
        // words also spell a reading and another reading continues it ("dang chay on qua": "đang chạy ồn quá";
        // "nha bi chay xuong": "nhà bị cháy" holds "bị chảy", and "bị chảy xuống" continues it).
        let read_otherwise = |h: &Hit| {
            let found = readings_of(h);
            found.contains(&Reading::Otherwise)
                || (found.contains(&Reading::Later)
                    && (found.contains(&Reading::SameLetters) || found.contains(&Reading::Inner)))
        };
        let signals = self.model.longest_only(
            role_hits(|r| matches!(r, Role::Emergency { .. }))
                .filter(|h| !self.model.claimed(h, &masks) && !negated(h) && !in_past(h) && !read_otherwise(h))
                .collect(),
        );
        // Ambiguous: resting on an ambiguous word typed without accents, and either that word alone ("chay") or
        // a phrase with another reading of the same letters ("dang chay"). A longer phrase with no such reading
        // says what it says ("boc chay", "chay nha": nobody writes "bọc chạy" or "chạy nhà").
        let ambiguous = |h: &Hit| {
            self.model.blind(tokens, h, true)
                && (entries[h.entry].words.len() == 1 || readings_of(h).contains(&Reading::SameLetters))
        };
        let category_of = |h: &Hit| match entries[h.entry].role {
            Role::Emergency { category, .. } => category,
            _ => usize::MAX,
        };
        // What burns, at most `context_window` words from a signal of `settled_by_context` in its sentence.
        let contexts: Vec<Hit> =
            role_hits(|r| *r == Role::Context).filter(|c| !self.model.claimed(c, &masks)).collect();
        let window = settings.context_window;
        let context_of = |h: &Hit| {
            if !self.model.contextual(h) {
                return None;
            }
            starting_in(&contexts, h.start.saturating_sub(window + self.model.max_len), h.end + window + 1)
                .iter()
                .find(|c| sentence(c) == sentence(h) && gap(c, h) <= window)
                .copied()
        };
        // Signals that say what they say whatever the accents: they settle the ambiguous ones of their sentence.
        let clear: Vec<&Hit> = signals.iter().filter(|h| !ambiguous(h)).collect();

        // Each distinct phrase once, at its best weight.
        let mut counted: Vec<(usize, usize, f64)> = Vec::new(); // (entry, category, weight)
        let mut notes: Vec<(usize, String)> = Vec::new(); // (category, why an ambiguous signal counted in full)
        let mut bonus: Vec<Option<(Hit, Hit)>> = vec![None; self.categories.len()]; // (context, signal)
        for h in &signals {
            let Role::Emergency { category, weight } = entries[h.entry].role else { continue };
            let sure = if ambiguous(h) {
                let text = &entries[h.entry].text;
                let why = if let Some(c) = context_of(h) {
                    Some(settled(text, &entries[c.entry].text, "nearby"))
                } else {
                    clear
                        .iter()
                        .find(|o| category_of(o) == category && sentence(o) == sentence(h) && o.entry != h.entry)
                        .map(|o| settled(text, &entries[o.entry].text, "in the same sentence"))
                };
                if let Some(why) = why {
                    if !notes.iter().any(|(_, n)| *n == why) {
                        notes.push((category, why));
                    }
                    true
                } else {
                    false
                }
            } else {
                true
            };
            // What a sure signal of `settled_by_context` is about: a house burning, not a pump burnt out.
            if sure && let Some(c) = context_of(h) {
                bonus[category].get_or_insert((c, *h));
            }
            let weight = if sure { weight } else { weight * settings.unaccented_factor };
            counted.push((h.entry, category, weight));
        }
        let (counted, mut scores) = score_by_category(counted, self.categories.len());
        for (category, found) in bonus.iter().enumerate() {
            if found.is_some() {
                scores[category] += settings.context_bonus;
            }
        }
        let urgency = role_hits(|r| *r == Role::Urgency).find(|h| !self.model.masked(h, &masks) && !in_past(h));
        if urgency.is_some() {
            for s in scores.iter_mut().filter(|s| **s > 0.0) {
                *s += settings.urgency_bonus;
            }
        }
        let best = (0..scores.len())
            .filter(|&c| scores[c] > 0.0)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)))?;
        if scores[best] < settings.threshold {
            return None;
        }
        for &(entry, category, weight) in &counted {
            matched.push(Matched {
                kind: MatchKind::Emergency,
                code: self.categories[category].code.clone(),
                phrase: entries[entry].text.clone(),
                weight,
            });
        }
        for (category, found) in bonus.iter().enumerate() {
            if let Some((c, h)) = found
                && settings.context_bonus > 0.0
            {
                matched.push(Matched {
                    kind: MatchKind::Emergency,
                    code: self.categories[category].code.clone(),
                    phrase: format!("{} (what \"{}\" is about)", entries[c.entry].text, entries[h.entry].text),
                    weight: settings.context_bonus,
                });
            }
        }
        for (category, why) in notes {
            matched.push(rule(&self.categories[category].code, why));
        }
        if let Some(u) = urgency {
            matched.push(Matched {
                kind: MatchKind::Emergency,
                code: self.categories[best].code.clone(),
                phrase: entries[u.entry].text.clone(),
                weight: settings.urgency_bonus,
            });
        }
        Some(EmergencyFinding { category: best, score: scores[best] })
    }

    /// The area index: given by the channel, else recognised from place names in the text.
    fn area_of(
        &self,
        given: Option<&str>,
        tokens: &[Token],
        hits: &[Hit],
        evidence: &[Hit],
        matched: &mut Vec<Matched>,
    ) -> Option<usize> {
        if let Some(area) = given.and_then(|g| self.resolve_area(g)) {
            let index = self.areas.iter().position(|a| a.code == area.code)?;
            let code = area.code.clone();
            matched.push(Matched {
                kind: MatchKind::Area,
                code,
                phrase: "area given by the channel".to_owned(),
                weight: 1.0,
            });
            return Some(index);
        }
        let entries = &self.model.entries;
        // A place name read only thanks to missing accents, whose words also belong to a category phrase
        // running past it, is that phrase ("tan long duong" is "tận lòng đường", not the commune Tân Long).
        let words_not_place = |h: &Hit| {
            self.model.blind(tokens, h, false)
                && starting_in(evidence, h.start.saturating_sub(self.model.max_len), h.end)
                    .iter()
                    .any(|e| e.start < h.end && h.start < e.end && (e.start < h.start || e.end > h.end))
        };
        let places = self.model.longest_only(
            hits.iter()
                .copied()
                .filter(|h| matches!(entries[h.entry].role, Role::Place { .. }) && !words_not_place(h))
                .collect(),
        );
        let streets: Vec<Hit> = hits.iter().copied().filter(|h| entries[h.entry].role == Role::StreetWord).collect();
        // Where each area's own name appears, to settle names shared by two areas.
        let own_names: Vec<(usize, usize)> = places
            .iter()
            .filter_map(|h| match &entries[h.entry].role {
                Role::Place { areas, own_name: true } => areas.first().map(|&a| (a, h.start)),
                _ => None,
            })
            .collect();
        let window = self.area_recognition.context_window;

        let mut scores = vec![0.0; self.areas.len()];
        let mut seen = HashSet::new();
        for h in &places {
            let Role::Place { areas, .. } = &entries[h.entry].role else { continue };
            if !seen.insert(h.entry) {
                continue;
            }
            let after_street_word = starting_in(&streets, h.start.saturating_sub(self.model.max_len), h.start)
                .iter()
                .any(|s| s.end == h.start);
            let weight = if after_street_word { self.area_recognition.street_weight } else { 1.0 };
            let area = if let [only] = areas.as_slice() {
                Some(*only)
            } else {
                // Shared name: only an own name of exactly one of its areas nearby decides.
                let near: HashSet<usize> = own_names
                    .iter()
                    .filter(|(a, pos)| areas.contains(a) && pos.abs_diff(h.start) <= window)
                    .map(|(a, _)| *a)
                    .collect();
                match near.len() {
                    1 => near.into_iter().next(),
                    _ => None,
                }
            };
            let text = entries[h.entry].text.clone();
            match area {
                Some(a) => {
                    scores[a] += weight;
                    matched.push(Matched {
                        kind: MatchKind::Area,
                        code: self.areas[a].code.clone(),
                        phrase: text,
                        weight,
                    });
                }
                None => {
                    let codes: Vec<&str> = areas.iter().map(|&a| self.areas[a].code.as_str()).collect();
                    matched.push(Matched {
                        kind: MatchKind::Area,
                        code: codes.join("|"),
                        phrase: format!("{text} (shared by several areas, no context: not counted)"),
                        weight: 0.0,
                    });
                }
            }
        }
        let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)))?;
        let tied = (0..scores.len()).filter(|&a| scores[a] == scores[best]).count() > 1;
        (scores[best] > 0.0 && !tied).then_some(best)
    }
}

/// Why a signal typed without accents on an ambiguous word counted its full weight.
fn settled(signal: &str, by: &str, place: &str) -> String {
    format!("\"{signal}\" typed without accents read as such: \"{by}\" {place}")
}

fn rule(code: &str, phrase: String) -> Matched {
    Matched { kind: MatchKind::Rule, code: code.to_owned(), phrase, weight: 0.0 }
}

/// Each distinct phrase counts once, at its best weight; a category's score is the sum over its phrases.
/// `weighted` holds (phrase entry, category, weight) per hit; returns the counted phrases and the scores.
fn score_by_category(weighted: Vec<(usize, usize, f64)>, categories: usize) -> (Vec<(usize, usize, f64)>, Vec<f64>) {
    let mut best: Vec<(usize, usize, f64)> = Vec::with_capacity(weighted.len());
    for (entry, category, weight) in weighted {
        match best.iter_mut().find(|(e, ..)| *e == entry) {
            Some(b) => b.2 = b.2.max(weight),
            None => best.push((entry, category, weight)),
        }
    }
    let mut scores = vec![0.0; categories];
    for &(_, category, weight) in &best {
        scores[category] += weight;
    }
    (best, scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_diacritics_and_expands_abbreviations() {
        assert_eq!(normalize("Mất điện, ko có đc!!"), "mat dien khong co duoc");
        assert_eq!(normalize("ĐƯỜNG  Đá\tĐỏ"), "duong da do");
        assert_eq!(normalize("hok bít j hết"), "khong biet gi het");
        assert_eq!(normalize("UBND xã"), "uy ban nhan dan xa");
        assert_eq!(normalize("csgt ở QL13, ĐT 743"), "canh sat giao thong o quoc lo 13 duong tinh 743");
        assert_eq!(normalize("sđt cskh?"), "so dien thoai cham soc khach hang");
        assert_eq!(normalize("TNXH ở kcn"), "te nan xa hoi o khu cong nghiep");
        assert_eq!(normalize("bn tiền 1 ng"), "bao nhieu tien 1 nguoi");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("!!! 😡 ..."), "");
    }

    #[test]
    fn decomposed_input_is_the_same_as_composed() {
        let composed = "Cháy nhà ở Dĩ An";
        let decomposed: String = composed.nfd().collect();
        assert_eq!(normalize(&decomposed), normalize(composed));
        assert_eq!(tokenize(&decomposed)[0].word, tokenize(composed)[0].word);
    }

    #[test]
    fn typed_diacritics_are_respected_missing_ones_forgiven() {
        let text = |s: &str| Word::new(s, true);
        let phrase = |s: &str| Word::new(s, false);
        assert!(text("chay").matches(&phrase("cháy")));
        assert!(text("chay").blind_to(&phrase("cháy")));
        assert!(text("cháy").matches(&phrase("cháy")));
        assert!(!text("cháy").blind_to(&phrase("cháy")));
        assert!(!text("chạy").matches(&phrase("cháy")));
        // Old and new tone placement agree.
        assert!(text("hoà").matches(&phrase("hòa")));
        assert!(text("thuỷ").matches(&phrase("thủy")));
        assert!(text("dang").matches(&phrase("đang")));
        assert!(!text("đi").matches(&phrase("dĩ")));
        // A phrase without diacritics is spelt exactly: "dao" (knife) is not "đạo".
        assert!(!text("đạo").matches(&phrase("dao")));
        assert!(text("dao").matches(&phrase("dao")));
    }

    #[test]
    fn sentences_split_on_end_punctuation_not_inside_numbers() {
        let t = tokenize("Giá 1.5 triệu. Xin hỏi TP.HCM\nđâu");
        let sentences: Vec<u32> = t.iter().map(|t| t.sentence).collect();
        assert_eq!(sentences, vec![0, 0, 0, 0, 1, 1, 1, 1, 1, 2]);
        // Commas cut clauses, not sentences; not inside a number.
        let t = tokenize("nhà sập, có người bên trong 1,5 m");
        let clauses: Vec<u32> = t.iter().map(|t| t.clause).collect();
        assert_eq!(clauses, vec![0, 0, 1, 1, 1, 1, 1, 1, 1]);
        assert!(t.iter().all(|t| t.sentence == 0));
    }
}
