"""A real SMTP server (aiosmtpd) that receives the e-mail channel's answers in its tests.

Usage: smtp_sink.py PORT DIR. Every mail accepted is written to DIR/<n>.eml (the message as received) and
DIR/<n>.json (the envelope). Recipients starting with "reject" get 550, "busy" get 451, so tests see how the
channel takes a relay's permanent and temporary refusals. Prints "ready" once listening; stops when stdin closes.
"""
import json
import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        if address.startswith("busy"):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        with open(base + ".eml.part", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.replace(base + ".eml.part", base + ".eml")
        return "250 2.0.0 Message accepted for delivery"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
