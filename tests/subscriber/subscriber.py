"""A subscriber of the published feed written in Python with nats-py, as another system of the province would write
it from docs/feed.md and docs/subscribers.md alone: it proves the contract is usable outside Rust.

It reads its connection settings (the env file `hotline subscriber create` prints), reads its audience through its
durable pull consumer from the beginning of the stream, and validates every message:

- the CloudEvents 1.0 headers (binary mode, percent-encoded values): all present, `ce-id` equal to `Nats-Msg-Id`,
  `ce-type` / `ce-dataschema` / the subject / `event.type` naming the same message, `ce-subject` the ticket id of the
  payload, `ce-time` the payload's `event.occurredAt`, `ce-source` the payload's province;
- the payload against the committed descriptor set `proto/hotline/v1/hotline.binpb`: parsed with
  `json_format.Parse` as the message `ce-dataschema` names, unknown fields refused (same release), and written back
  to the same JSON;
- its audience: a public message is `AUDIENCE_PUBLIC`, with `ce-id` = `event.eventId`, and carries none of the
  strings given with `--forbid` (citizen contact, petition text), neither in its body nor in a header; an agency
  copy is `AUDIENCE_AGENCY` for this subscriber's agency, with `ce-id` = `<eventId>:<agency>`.

It stores what it accepted in a state file *before* acknowledging (ack confirmed by the server), as the docs ask,
so it can stop at any point and resume: `--stop-after K` stops after K stored messages, and `--crash` then fetches
one more message and exits without storing or acknowledging it, like a process killed mid-message (the consumer's
ack_wait is 2 s, so the server redelivers it to the next run). A later run with the same state file resumes from
the durable consumer and reads until it has `--expect` messages and the consumer has nothing pending.

At the end it checks exactly once and in order: no event id twice at different stream sequences (a redelivery of
the same stream sequence is the normal at-least-once case and is counted, not stored twice), and per ticket the
`event.seq` values are increasing by one (for the public feed: exactly 1..n; an agency feed may skip to a
`PersonalDataErased`, whose earlier copies were erased from the stream). `--check-permissions` also tries
what the credentials must not allow and reports each refusal. It prints one JSON summary line on stdout and exits 1
if any problem was found.

Run by tests/e2e/subscriber.rs (`cargo test -p hotline --test e2e -- subscriber`, and so by scripts/test) against a
running `hotline up`, with PYTHONPATH from scripts/lib/python-tools.sh (nats-py and protobuf, pinned).
"""

import argparse
import asyncio
import json
import os
import re
import sys
import time

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
    from google.protobuf import timestamp_pb2
except ImportError as e:  # Said plainly: the Rust test shows this line when the tools are missing.
    print(f"subscriber.py needs nats-py and protobuf on PYTHONPATH (bash scripts/lib/python-tools.sh): {e}",
          file=sys.stderr)
    sys.exit(3)

CE_HEADERS = ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject", "ce-datacontenttype",
              "ce-dataschema"]
PACKAGE = "hotline.v1"
TYPE_PREFIX = "vn.gov.hotline.v1."
SCHEMA_PREFIX = "proto:" + PACKAGE + "."
SUBJECT_PREFIX = "hotline.feed.v1."
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# How long the consumer waits for an ack before delivering again: short, so a "crashed" run's message comes back
# to the next run within the test.
ACK_WAIT_SECONDS = 2.0


def read_settings(path):
    """The env file `hotline subscriber create` prints: KEY=VALUE lines, `#` comments."""
    settings = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                settings[key] = value
    missing = [k for k in ("NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_INBOX_PREFIX", "FEED_STREAM",
                           "FEED_CONSUMERS", "FEED_FILTER") if k not in settings]
    if missing:
        raise SystemExit(f"{path} lacks {', '.join(missing)}")
    return settings


def percent_decode(value):
    """Decodes a header value encoded as the CloudEvents NATS binding says (docs/feed.md): every byte that is a
    space, `"`, `%` or outside 0x21..0x7E is `%XX`. Refuses a value that is not so encoded."""
    raw = bytearray()
    i = 0
    while i < len(value):
        c = value[i]
        if c == "%":
            hex2 = value[i + 1:i + 3]
            if not re.fullmatch(r"[0-9A-F]{2}", hex2):
                raise ValueError(f"bad percent escape in header value {value!r}")
            raw.append(int(hex2, 16))
            i += 3
            continue
        if not ("\x21" <= c <= "\x7e") or c == '"':
            raise ValueError(f"header value {value!r} has an unencoded {c!r}")
        raw.append(ord(c))
        i += 1
    return raw.decode("utf-8")


def snake_case(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def load_classes(descriptor_set_path):
    """The messages of the committed descriptor set, by full name."""
    files = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_set_path, "rb") as f:
        files.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    classes = {}
    for proto in files.file:
        if proto.package != PACKAGE:
            continue
        for message in proto.message_type:
            full = f"{proto.package}.{message.name}"
            classes[full] = message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
    if not classes:
        raise SystemExit(f"{descriptor_set_path} has no message of package {PACKAGE}")
    return classes


def same_instant(a, b):
    ta, tb = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    ta.FromJsonString(a)
    tb.FromJsonString(b)
    return (ta.seconds, ta.nanos) == (tb.seconds, tb.nanos)


class Subscriber:
    def __init__(self, args):
        self.args = args
        self.settings = read_settings(args.settings)
        self.filter = self.settings["FEED_FILTER"]
        if not (self.filter.startswith(SUBJECT_PREFIX) and self.filter.endswith(".>")):
            raise SystemExit(f"unexpected FEED_FILTER {self.filter}")
        # "public" or the agency code.
        self.audience = self.filter[len(SUBJECT_PREFIX):-2]
        self.consumer = args.consumer or self.settings["FEED_CONSUMERS"].split(",")[0]
        self.classes = load_classes(args.descriptors)
        self.forbidden = [s for s in args.forbid if s]
        self.state = {"messages": [], "seen": {}, "runs": 0}
        if os.path.exists(args.state):
            with open(args.state, encoding="utf-8") as f:
                self.state = json.load(f)
        self.state["runs"] += 1
        self.problems = []
        self.redelivered = 0
        self.fetched_this_run = 0
        self.stored_this_run = 0
        self.async_errors = []

    def problem(self, msg_id, text):
        self.problems.append(f"{msg_id}: {text}")

    def save(self):
        tmp = self.args.state + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.args.state)

    # --- validation of one message -------------------------------------------------------------------------------

    def validate(self, msg):
        """Checks one message; returns what to store about it, or None (with problems recorded)."""
        meta = msg.metadata
        where = f"stream seq {meta.sequence.stream}"
        headers = msg.headers or {}
        missing = [h for h in CE_HEADERS + ["Nats-Msg-Id"] if h not in headers]
        if missing:
            self.problem(where, f"missing headers {missing} (has {sorted(headers)})")
            return None
        try:
            ce = {h: percent_decode(headers[h]) for h in CE_HEADERS}
        except ValueError as e:
            self.problem(where, str(e))
            return None
        ce_id = ce["ce-id"]
        where = f"{where} ce-id {ce_id}"
        if ce["ce-specversion"] != "1.0":
            self.problem(where, f"ce-specversion {ce['ce-specversion']!r}")
        if ce_id != headers["Nats-Msg-Id"]:
            self.problem(where, f"Nats-Msg-Id {headers['Nats-Msg-Id']!r} differs from ce-id")
        if ce["ce-datacontenttype"] != "application/json":
            self.problem(where, f"ce-datacontenttype {ce['ce-datacontenttype']!r}")
        part = headers.get("Hotline-Part", "")
        if not re.fullmatch(r"[1-9][0-9]*/[1-9][0-9]*", part) or int(part.split("/")[0]) > int(part.split("/")[1]):
            self.problem(where, f"Hotline-Part {part!r}")
        if not headers.get("Hotline-Log-Position", "").isdigit():
            self.problem(where, f"Hotline-Log-Position {headers.get('Hotline-Log-Position')!r}")

        schema = ce["ce-dataschema"]
        if not schema.startswith(SCHEMA_PREFIX):
            self.problem(where, f"ce-dataschema {schema!r} is not a {PACKAGE} message")
            return None
        full_name = schema[len("proto:"):]
        name = full_name[len(PACKAGE) + 1:]
        cls = self.classes.get(full_name)
        if cls is None:
            self.problem(where, f"ce-dataschema {schema!r} names no message of hotline.binpb")
            return None
        snake = snake_case(name)
        if ce["ce-type"] != TYPE_PREFIX + snake:
            self.problem(where, f"ce-type {ce['ce-type']!r} does not match ce-dataschema {schema!r}")
        # hotline.feed.v1.<audience>.<event_type>.<ticket id>
        if msg.subject != f"{SUBJECT_PREFIX}{self.audience}.{snake}.{ce['ce-subject']}":
            self.problem(where, f"subject {msg.subject!r} does not match audience {self.audience}, {schema!r} "
                                f"and ticket {ce['ce-subject']}")

        # The payload, by the schema: unknown fields refused (the same release wrote it).
        body = msg.data.decode("utf-8")
        try:
            parsed = json_format.Parse(body, cls(), ignore_unknown_fields=False)
        except json_format.ParseError as e:
            self.problem(where, f"payload does not parse as {full_name}: {e}")
            return None
        data = json.loads(body)
        again = json_format.MessageToDict(parsed)
        if again != data:
            self.problem(where, f"payload does not re-serialise to the same JSON: sent {data} read back {again}")

        event, ticket = parsed.event, parsed.ticket
        if not UUID.match(ce["ce-subject"]):
            self.problem(where, f"ce-subject {ce['ce-subject']!r} is not a ticket id")
        if not (ce["ce-subject"] == event.ticket_id == ticket.ticket_id):
            self.problem(where, f"ce-subject {ce['ce-subject']} / event.ticketId {event.ticket_id} / "
                                f"ticket.ticketId {ticket.ticket_id} differ")
        if event.type != name:
            self.problem(where, f"event.type {event.type!r} is not the message {name}")
        if ce["ce-source"] != f"/hotline/{event.province}" or not event.province:
            self.problem(where, f"ce-source {ce['ce-source']!r} vs event.province {event.province!r}")
        try:
            if not same_instant(ce["ce-time"], data["event"]["occurredAt"]):
                self.problem(where, f"ce-time {ce['ce-time']} is not event.occurredAt {data['event']['occurredAt']}")
        except (ValueError, KeyError) as e:
            self.problem(where, f"ce-time / occurredAt: {e}")
        if event.seq < 1:
            self.problem(where, "event.seq missing")

        audience_enum = parsed.DESCRIPTOR.fields_by_name["event"].message_type.fields_by_name["audience"].enum_type
        audience = audience_enum.values_by_number[event.audience].name
        if self.audience == "public":
            if audience != "AUDIENCE_PUBLIC" or event.agency or ce_id != event.event_id:
                self.problem(where, f"not a public message: audience {audience}, agency {event.agency!r}, "
                                    f"eventId {event.event_id}")
            # No personal data, no free text: nowhere in the body or the headers.
            everything = "\n".join([body, json.dumps(data, ensure_ascii=False)]
                                    + [f"{k}: {v}" for k, v in headers.items()])
            for secret in self.forbidden:
                if secret in everything:
                    self.problem(where, f"the public message carries {secret!r}")
        else:
            if (audience != "AUDIENCE_AGENCY" or event.agency != self.audience
                    or ce_id != f"{event.event_id}:{self.audience}" or ticket.agency != self.audience):
                self.problem(where, f"not a copy for {self.audience}: audience {audience}, agency {event.agency!r}, "
                                    f"ticket.agency {ticket.agency!r}, eventId {event.event_id}")
            for secret in self.forbidden:
                if secret in "\n".join(f"{k}: {v}" for k, v in headers.items()):
                    self.problem(where, f"a header carries {secret!r}")
        return {
            "stream_seq": meta.sequence.stream,
            "id": ce_id,
            "ticket": event.ticket_id,
            "seq": event.seq,
            "type": name,
            "event_id": event.event_id,
            "status": data["ticket"].get("status", ""),
            "agency": ticket.agency,
            "has_contact": "citizen" in json.dumps(data.get("petition", {})),
            "run": self.state["runs"],
        }

    async def handle(self, msg):
        """Validate, store, then acknowledge (confirmed by the server)."""
        self.fetched_this_run += 1
        meta = msg.metadata
        if meta.num_delivered > 1:
            self.redelivered += 1
        ce_id = msg.headers.get("Nats-Msg-Id", "") if msg.headers else ""
        earlier = self.state["seen"].get(ce_id)
        if earlier is not None:
            if earlier != meta.sequence.stream:
                self.problem(ce_id, f"published twice: stream seqs {earlier} and {meta.sequence.stream}")
            # Same stream seq: delivered again after a lost ack; already stored, so only acknowledged.
        else:
            record = self.validate(msg)
            if record is not None:
                self.state["messages"].append(record)
                self.state["seen"][record["id"]] = record["stream_seq"]
                self.stored_this_run += 1
                self.save()
        await msg.ack_sync(timeout=5)

    # --- what the credentials must not do ------------------------------------------------------------------------

    async def refused_publish(self, nc, subject):
        before = len(self.async_errors)
        await nc.publish(subject, b"{}")
        await nc.flush(timeout=5)
        for _ in range(40):
            if len(self.async_errors) > before:
                return f"refused: {self.async_errors[-1]}"
            await asyncio.sleep(0.05)
        return None

    async def refused_subscribe(self, nc, subject):
        before = len(self.async_errors)
        sub = await nc.subscribe(subject)
        await nc.flush(timeout=5)
        for _ in range(40):
            if len(self.async_errors) > before:
                await sub.unsubscribe()
                return f"refused: {self.async_errors[-1]}"
            await asyncio.sleep(0.05)
        await sub.unsubscribe()
        return None

    async def refused_request(self, nc, subject, body=b""):
        """A request whose publish the server refuses gets no answer, and the server reports a permissions
        violation naming the subject. No answer alone proves nothing (a subject nobody serves is silent too); any
        answer, even an API error, means the request reached JetStream."""
        try:
            reply = await nc.request(subject, body, timeout=2)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
            for _ in range(40):
                violation = next((err for err in self.async_errors
                                  if "permissions violation" in err.lower() and subject.lower() in err.lower()), None)
                if violation:
                    return f"refused: {violation}"
                await asyncio.sleep(0.05)
            self.problem("permissions", f"{subject}: no answer ({type(e).__name__}) but no permissions violation either")
            return None
        self.problem("permissions", f"{subject} answered: {reply.data[:200]!r}")
        return None

    async def refused_consumer(self, js, name, filter_subject):
        config = ConsumerConfig(name=name, durable_name=name, filter_subject=filter_subject,
                                deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT)
        try:
            await js._jsm.add_consumer(self.settings["FEED_STREAM"], config=config, timeout=2)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
            return f"refused: no answer ({type(e).__name__})"
        except nats.js.errors.APIError as e:
            # JetStream saw the request: the permissions let it through (whatever JetStream thought of it).
            self.problem("permissions", f"consumer {name} on {filter_subject}: JetStream answered {e}")
            return None
        return None

    async def check_permissions(self, nc, js):
        other = "dot" if self.audience == "public" else "public"
        stream = self.settings["FEED_STREAM"]
        # A consumer name it may use that does not exist yet (so only the permissions can refuse it).
        consumers = self.settings["FEED_CONSUMERS"].split(",")
        spare = next((c for c in consumers if c != self.consumer), f"{self.consumer}-probe")
        checks = {
            # Fire-and-forget: the server answers a refused publish or subscribe with an asynchronous -ERR.
            "publish to the internal log": await self.refused_publish(nc, "hotline.events.x"),
            "publish a forged feed message": await self.refused_publish(
                nc, f"{SUBJECT_PREFIX}{self.audience}.petition_received.00000000-0000-7000-8000-000000000000"),
            "subscribe to the live feed subjects": await self.refused_subscribe(nc, "hotline.feed.v1.>"),
        }
        # Requests wait for their timeout when refused: all at once.
        names = ["read the internal stream", "get a feed message directly", "delete a feed message", "list streams",
                 f"a consumer of its own on the {other} feed", "a consumer of another name"]
        outcomes = await asyncio.gather(
            self.refused_request(nc, "$JS.API.STREAM.INFO.HOTLINE_EVENTS"),
            # The feed has no allow_direct, so DIRECT.GET would be silent anyway: probe the API that answers.
            self.refused_request(nc, f"$JS.API.STREAM.MSG.GET.{stream}", json.dumps({"seq": 1}).encode()),
            # The stream allows deletes (the projector erases personal data with them); subscribers may not.
            self.refused_request(nc, f"$JS.API.STREAM.MSG.DELETE.{stream}", json.dumps({"seq": 1}).encode()),
            self.refused_request(nc, "$JS.API.STREAM.NAMES"),
            self.refused_consumer(js, spare, f"{SUBJECT_PREFIX}{other}.>"),
            self.refused_consumer(js, "intruder", self.filter),
        )
        checks.update(zip(names, outcomes))
        for what, outcome in checks.items():
            if outcome is None:
                self.problem("permissions", f"allowed: {what}")
        return checks

    # --- the run -------------------------------------------------------------------------------------------------

    async def run(self):
        s = self.settings

        async def on_error(e):
            self.async_errors.append(str(e))

        nc = await nats.connect(s["NATS_URL"], user=s["NATS_USER"], password=s["NATS_PASSWORD"],
                                inbox_prefix=s["NATS_INBOX_PREFIX"], error_cb=on_error, connect_timeout=5,
                                allow_reconnect=False, name=f"subscriber.py {self.consumer}")
        js = nc.jetstream()
        permissions = None
        try:
            # Same name and config every run: the first creates the consumer, later runs resume it.
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
                                    ack_wait=ACK_WAIT_SECONDS, max_deliver=-1)
            sub = await js.pull_subscribe(self.filter, durable=self.consumer, stream=s["FEED_STREAM"],
                                          config=config)
            deadline = time.monotonic() + self.args.timeout
            crashed = False
            while time.monotonic() < deadline:
                if self.args.stop_after is not None and self.stored_this_run >= self.args.stop_after:
                    if self.args.crash:
                        # Take one more and die with it unstored and unacknowledged.
                        try:
                            await sub.fetch(1, timeout=5)
                            crashed = True
                        except nats.errors.TimeoutError:
                            self.problem("crash", "no message left to crash on")
                    break
                want = 10
                if self.args.stop_after is not None:
                    want = min(want, self.args.stop_after - self.stored_this_run)
                try:
                    batch = await sub.fetch(want, timeout=1)
                except nats.errors.TimeoutError:
                    batch = []
                for msg in batch:
                    await self.handle(msg)
                if not batch and self.args.stop_after is None and len(self.state["messages"]) >= self.args.expect:
                    info = await sub.consumer_info()
                    if info.num_pending == 0 and info.num_ack_pending == 0:
                        break
            else:
                self.problem("run", f"timed out after {self.args.timeout}s with {len(self.state['messages'])} "
                                    f"messages stored (expected {self.args.expect}, stop after {self.args.stop_after})")
            info = await sub.consumer_info()
            if self.args.check_permissions:
                permissions = await self.check_permissions(nc, js)
        finally:
            if not nc.is_closed:
                await nc.close()
        return self.summary(info, crashed, permissions)

    def summary(self, info, crashed, permissions):
        tickets = {}
        for m in self.state["messages"]:
            tickets.setdefault(m["ticket"], []).append(m)
        for ticket, messages in tickets.items():
            seqs = [m["seq"] for m in messages]
            # An agency feed loses a ticket's earlier copies when its personal data is erased (docs/feed.md): a
            # subscriber that had not read them yet sees a gap before the PersonalDataErased message.
            if any(b["seq"] != a["seq"] + 1
                   and not (self.audience != "public" and b["type"] == "PersonalDataErased" and b["seq"] > a["seq"])
                   for a, b in zip(messages, messages[1:])):
                self.problem(ticket, f"events out of order or missing: seqs {seqs}")
            if self.audience == "public" and seqs[0] != 1:
                self.problem(ticket, f"the public feed starts the ticket at seq {seqs[0]}")
        stream_seqs = [m["stream_seq"] for m in self.state["messages"]]
        if stream_seqs != sorted(stream_seqs) or len(set(stream_seqs)) != len(stream_seqs):
            self.problem("order", "stream sequences not strictly increasing")
        return {
            "audience": self.audience,
            "consumer": self.consumer,
            "run": self.state["runs"],
            "stored": len(self.state["messages"]),
            "stored_this_run": self.stored_this_run,
            "fetched_this_run": self.fetched_this_run,
            "redelivered_this_run": self.redelivered,
            "crashed": crashed,
            "consumer_pending": info.num_pending,
            "consumer_ack_pending": info.num_ack_pending,
            "consumer_delivered_stream_seq": info.delivered.stream_seq,
            "consumer_ack_floor_stream_seq": info.ack_floor.stream_seq,
            "first_stored_this_run": next((m["stream_seq"] for m in self.state["messages"]
                                           if m["run"] == self.state["runs"]), None),
            "types": sorted({m["type"] for m in self.state["messages"]}),
            "tickets": {t: [{"seq": m["seq"], "type": m["type"], "event_id": m["event_id"], "status": m["status"],
                             "agency": m["agency"], "has_contact": m["has_contact"]} for m in ms]
                        for t, ms in tickets.items()},
            "permissions": permissions,
            "problems": self.problems,
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="the env file `hotline subscriber create` printed")
    parser.add_argument("--descriptors", required=True, help="proto/hotline/v1/hotline.binpb")
    parser.add_argument("--state", required=True, help="where this subscriber stores what it accepted")
    parser.add_argument("--consumer", help="which of FEED_CONSUMERS to use [default: the first]")
    parser.add_argument("--stop-after", type=int, help="stop after storing this many messages in this run")
    parser.add_argument("--crash", action="store_true", help="with --stop-after: then fetch one more and exit "
                                                             "without storing or acknowledging it")
    parser.add_argument("--expect", type=int, default=0, help="read until at least this many are stored in all")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    parser.add_argument("--forbid", action="append", default=[],
                        help="a string no public message or header may contain (repeatable)")
    parser.add_argument("--check-permissions", action="store_true",
                        help="also try what the credentials must not allow")
    args = parser.parse_args()
    summary = asyncio.run(Subscriber(args).run())
    print(json.dumps(summary, ensure_ascii=False))
    sys.exit(1 if summary["problems"] else 0)


if __name__ == "__main__":
    main()
