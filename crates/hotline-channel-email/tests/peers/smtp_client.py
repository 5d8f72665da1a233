"""A real SMTP client for the e-mail channel's tests: Python's smtplib sends mails to our listener.

Usage: smtp_client.py HOST PORT < plan.json, where the plan is {"mails": [mail, ...]} and a mail is
{"from": "a@x", "to": ["b@y"], "file": "path.eml" | "data": "text" | "generate_bytes": N, "declare_size": bool}.
All mails go over one connection, as an MTA sends a queue. Prints one JSON object: the code and text of every
reply (ehlo, then per mail: mail, rcpt[], data, and a noop after it to show the session is still usable).
"""
import json
import smtplib
import sys


def reply(pair):
    code, text = pair
    return {"code": code, "text": text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)}


def content(mail):
    if "file" in mail:
        with open(mail["file"], "rb") as f:
            return f.read()
    if "generate_bytes" in mail:
        line = b"x" * 998 + b"\r\n"
        head = b"From: big@example.vn\r\nSubject: big\r\nMessage-ID: <big@example.vn>\r\n\r\n"
        return head + line * (mail["generate_bytes"] // len(line) + 1)
    return mail["data"].encode("utf-8")


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    plan = json.load(sys.stdin)
    out = {"mails": []}
    with smtplib.SMTP(host, port, timeout=60) as s:
        out["ehlo"] = reply(s.ehlo("client.example.vn"))
        out["features"] = sorted(s.esmtp_features)
        for mail in plan["mails"]:
            body = content(mail)
            result = {}
            options = ["SIZE=%d" % len(body)] if mail.get("declare_size") else []
            result["mail"] = reply(s.mail(mail["from"], options))
            result["rcpt"] = [reply(s.rcpt(to)) for to in mail["to"]]
            if result["mail"]["code"] == 250 and any(r["code"] == 250 for r in result["rcpt"]):
                try:
                    # smtplib does the dot-stuffing and turns bare LFs into CRLF, as every MTA does.
                    result["data"] = reply(s.data(body))
                except smtplib.SMTPDataError as e:
                    result["data"] = {"code": e.smtp_code, "text": e.smtp_error.decode("utf-8", "replace")}
            else:
                s.rset()
            result["noop"] = reply(s.noop())
            out["mails"].append(result)
        out["quit"] = reply(s.quit())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
