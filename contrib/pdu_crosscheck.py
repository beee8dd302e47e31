#!/usr/bin/env python3
"""Decode SMS PDUs with an independent implementation, to cross-check smsgw's encoder.

Reads one PDU per line on stdin (hex, SMSC field first, as sent after AT+CMGS's "> "
prompt) and prints one JSON object per line, one view per library:
  {"gsmmodem": VIEW, "smspdudecoder": VIEW}
where VIEW is {"type": "submit"|"deliver", "number": ..., "text": ...,
"concat": {"reference": r, "part": p, "parts": n} or null} or {"error": "..."}.

Two libraries from PyPI, because each has a bug the other has not:
- python-gsmmodem-new 0.13.0 (its pdu module; pyserial only because its package imports
  the modem code) always skips one octet after a UDH, wrong when the UDH ends on a septet
  boundary (7 octets: a 16-bit concatenation IE) and needs no fill bits. Two cells of its
  GSM 7-bit tables are wrong and are corrected below; the rest is its own.
- smspdudecoder 2.2.0 cuts GSM 7-bit text by septet positions after decoding, so a text
  with escape sequences whose last octet has 7 spare bits gains a stray "@".
tests/pdu_crosscheck.rs says which view must match when; it also builds the venv.
"""

import json
import sys

from io import StringIO

import gsmmodem.pdu
from gsmmodem.pdu import Concatenation, decodeSmsPdu
from smspdudecoder.fields import SMSDeliver, SMSSubmit

# TS 23.038 §6.2.1 has "§" at 0x5F (the library has "`"), and §6.2.1.1 has form feed
# at ESC 0x0A (the library keys it by chr(0xFF) with an int value that never matches).
gsmmodem.pdu.GSM7_BASIC = gsmmodem.pdu.GSM7_BASIC.replace("`", "§")
gsmmodem.pdu.GSM7_EXTENDED.pop(chr(0xFF), None)
gsmmodem.pdu.GSM7_EXTENDED["\f"] = chr(0x0A)

TYPES = {"SMS-SUBMIT": "submit", "SMS-DELIVER": "deliver"}


def whole_characters(text):
    """The library returns each UTF-16 unit of UCS-2 text as its own character."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def concat_of(decoded):
    for element in decoded.get("udh", []):
        if isinstance(element, Concatenation):
            return {"reference": element.reference, "part": element.number, "parts": element.parts}
    return None


def gsmmodem_view(pdu):
    decoded = decodeSmsPdu(pdu)
    kind = TYPES.get(decoded["type"])
    if kind is None:
        return {"error": "not an SMS-SUBMIT or SMS-DELIVER: " + decoded["type"]}
    return {
        "type": kind,
        "number": decoded["number"],
        "text": whole_characters(decoded["text"]),
        "concat": concat_of(decoded),
    }


def smspdudecoder_view(pdu):
    smsc_octets = int(pdu[0:2], 16)
    mti = int(pdu[2 + 2 * smsc_octets:4 + 2 * smsc_octets], 16) & 0x03
    if mti == 1:
        kind, sms = "submit", SMSSubmit.decode(StringIO(pdu))
        address = sms["recipient"]
    elif mti == 0:
        kind, sms = "deliver", SMSDeliver.decode(StringIO(pdu))
        address = sms["sender"]
    else:
        return {"error": f"TP-MTI {mti} is not an SMS-SUBMIT or SMS-DELIVER"}
    number = address["number"]
    if address["toa"]["ton"] == "international":
        number = "+" + number
    concat = None
    for element in (sms["user_data"].get("header") or {}).get("elements", []):
        if element["iei"] in (0x00, 0x08):
            data = element["data"]
            concat = {"reference": data["reference"], "part": data["part_number"], "parts": data["parts_count"]}
    return {"type": kind, "number": number, "text": sms["user_data"]["data"], "concat": concat}


def view(decoder, pdu):
    try:
        return decoder(pdu)
    except Exception as error:  # the libraries signal bad input with assorted exceptions
        return {"error": f"{type(error).__name__}: {error}"}


def main():
    for line in sys.stdin:
        pdu = line.strip()
        if pdu:
            result = {"gsmmodem": view(gsmmodem_view, pdu), "smspdudecoder": view(smspdudecoder_view, pdu)}
            print(json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
