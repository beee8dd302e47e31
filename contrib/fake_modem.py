#!/usr/bin/env python3
"""A GSM modem simulator on a pseudo-terminal, for end-to-end tests of smsgw.

Written apart from the gateway's own simulator (src/modem/sim/), from the standards:
3GPP TS 27.007 and 27.005 for the AT commands, TS 23.040 for the SMS-DELIVER PDUs it
stores, TS 23.038 for the GSM 7-bit default alphabet. The standard library only.

    fake_modem.py --link PATH [--records FILE]

Opens a pseudo-terminal, makes PATH a symlink to its slave side, and keeps the slave
open itself, so that the gateway can be killed and restarted while the modem keeps its
stored messages. The gateway receives SMS the way real modems hand them over: stored in
the "SM" memory, announced with `+CMTI: "SM",<index>`, read with AT+CMGR=<index> and
deleted with AT+CMGD=<index>.

stdout, one JSON object per line:
    {"event": "ready", "device": "/dev/pts/N"}          once, at start
    {"event": "command", "line": "AT+CMGR=1"}           every command line received
    {"event": "stored", "index": n, "part": k, "parts": N}
                                                        one per part delivered (with
                                                        "reference": r when N > 1)
    {"event": "read", "index": n}                       AT+CMGR (or AT+CMGL) of a message
    {"event": "deleted", "index": n}                    AT+CMGD freed a message
    {"event": "submitted", "length": L, "pdu": "HEX", "mr": m}
                                                        one per accepted AT+CMGS
    {"event": "rejected", "length": L, "pdu": "HEX", "reason": "..."}
                                                        an AT+CMGS PDU refused with
                                                        +CMS ERROR: 304
    {"event": "slots", "slots": [{"index": n, "stat": s, "pdu": "HEX"}, ...]}
                                                        answer to {"list": true}
    {"event": "error", "message": "..."}                a control line that was refused

stdin, one JSON object per line:
    {"deliver": {"from": "+33612345678", "text": "...", "reference": 7, "parts": [2, 1]}}
        "reference" (0-255, for concatenated texts) and "parts" (which part numbers, in
        which order; default all in order) are optional.
    {"announce_again": true}     re-announces every stored message
    {"list": true}               the stored messages, as a "slots" event

Exits on stdin EOF, SIGTERM, SIGHUP or SIGINT, removing the symlink.
"""

import argparse
import datetime
import errno
import fcntl
import json
import os
import re
import select
import signal
import struct
import sys
import termios
import time

CAPACITY = 30
MEMORY = "SM"
MANUFACTURER = "FakeModem"
MODEL = "fake_modem.py GSM"
REVISION = "1.0"
IMEI = "356938035643809"
IMSI = "208019876543210"

CR, LF, BS, DEL, ESC, CTRL_Z = 0x0D, 0x0A, 0x08, 0x7F, 0x1B, 0x1A
MAX_LINE = 1024
MAX_PDU_HEX = 2 * 200
MAX_OUTPUT = 1 << 20

# Linux: exclusive mode of a tty (TIOCEXCL), as serial libraries set it when they open a
# port. It outlives a killed opener while we hold the slave: see Modem.release_exclusive.
TIOCEXCL = getattr(termios, "TIOCEXCL", 0x540C)
TIOCNXCL = getattr(termios, "TIOCNXCL", 0x540D)
TIOCGEXCL = (2 << 30) | (4 << 16) | (ord("T") << 8) | 0x40  # _IOR('T', 0x40, int)


# ---------------------------------------------------------------------------------------
# TS 23.038 §6.2.1: the GSM 7-bit default alphabet, and its extension table (§6.2.1.1),
# reached through the escape code 0x1B.

GSM_DEFAULT_ROWS = (
    "@£$¥èéùìòÇ\nØø\rÅå",
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ",
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "¡ABCDEFGHIJKLMNO",
    "PQRSTUVWXYZÄÖÑÜ§",
    "¿abcdefghijklmno",
    "pqrstuvwxyzäöñüà",
)
GSM_DEFAULT = "".join(GSM_DEFAULT_ROWS)
assert len(GSM_DEFAULT) == 128
GSM_CODES = {char: code for code, char in enumerate(GSM_DEFAULT) if code != ESC}
GSM_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}


def gsm_septets(char):
    """The septets of one character in the default alphabet, or None."""
    if char in GSM_CODES:
        return [GSM_CODES[char]]
    if char in GSM_EXTENSION:
        return [ESC, GSM_EXTENSION[char]]
    return None


def pack_septets(septets, fill_bits=0):
    """Septets packed least significant bit first (TS 23.038 §6.1.2.1.1), after
    `fill_bits` zero bits."""
    value, bits = 0, fill_bits
    for septet in septets:
        value |= (septet & 0x7F) << bits
        bits += 7
    return value.to_bytes((bits + 7) // 8, "little")


def chunk(groups, single, multi):
    """Splits units (each a list that must stay whole: an escape pair, a surrogate
    pair) into one part of at most `single` or parts of at most `multi` elements."""
    if sum(len(group) for group in groups) <= single:
        return [[unit for group in groups for unit in group]]
    parts, current = [], []
    for group in groups:
        if len(current) + len(group) > multi:
            parts.append(current)
            current = []
        current.extend(group)
    if current:
        parts.append(current)
    return parts


def bcd_swapped(value):
    """Two decimal digits as a semi-octet pair, low digit first (TS 23.040 §9.1.2.3)."""
    return ((value % 10) << 4) | (value // 10 % 10)


def encode_address(address):
    """TP-OA (TS 23.040 §9.1.2.5): a number ('+' for international, type 0x91; else
    unknown, 0x81), or an alphanumeric originator (0xD0) of up to 11 GSM characters."""
    compact = address.replace(" ", "")
    if re.fullmatch(r"\+?[0-9*#abcABC]{1,20}", compact):
        international = compact.startswith("+")
        digits = compact.lstrip("+")
        codes = [("0123456789*#abc".index(d.lower())) for d in digits]
        if len(codes) % 2:
            codes.append(0xF)
        packed = bytes(codes[i] | (codes[i + 1] << 4) for i in range(0, len(codes), 2))
        return bytes([len(digits), 0x91 if international else 0x81]) + packed
    septets = []
    for char in address:
        coded = gsm_septets(char)
        if coded is None:
            raise ValueError(f"the originator {address!r} is neither a number nor GSM 7-bit text")
        septets.extend(coded)
    if not septets or len(septets) > 11:
        raise ValueError(f"an alphanumeric originator has 1 to 11 septets, not {len(septets)}")
    # Its length counts the useful semi-octets of the packed septets.
    return bytes([(len(septets) * 7 + 3) // 4, 0xD0]) + pack_septets(septets)


def service_centre_time_stamp(now):
    """TP-SCTS (TS 23.040 §9.2.3.11): local time and its offset in quarters of an hour,
    the sign in bit 3 of the last octet."""
    minutes = int(now.utcoffset().total_seconds() // 60)
    zone = bcd_swapped(abs(minutes) // 15) | (0x08 if minutes < 0 else 0)
    fields = (now.year % 100, now.month, now.day, now.hour, now.minute, now.second)
    return bytes(bcd_swapped(field) for field in fields) + bytes([zone])


def split_text(text):
    """(TP-DCS, parts): GSM 7-bit septet lists when every character is in the default
    alphabet or its extension, else UCS-2 octet strings (UTF-16BE, surrogate pairs for
    characters past the BMP). One part if it fits 160 septets / 70 UCS-2 characters,
    else parts of 153 septets / 67 UCS-2 code units, pairs never split."""
    groups = [gsm_septets(char) for char in text]
    if all(group is not None for group in groups):
        return 0x00, chunk(groups, 160, 153)
    units = [list(char.encode("utf-16-be", "surrogatepass")) for char in text]
    return 0x08, [bytes(part) for part in chunk(units, 140, 134)]


def deliver_pdu(originator, dcs, part, reference, number, total, last_of_batch, now):
    """One SMS-DELIVER (TS 23.040 §9.2.2.1), SMSC field first (empty): (hex, TPDU
    octets)."""
    concatenated = total > 1
    header = bytes([5, 0x00, 3, reference, total, number]) if concatenated else b""
    if dcs == 0x00:
        # Fill bits so that the first septet of the text starts on a septet boundary.
        fill = (7 - len(header) * 8 % 7) % 7
        user_data = header + pack_septets(part, fill)
        length = (len(header) * 8 + fill) // 7 + len(part)
    else:
        user_data = header + part
        length = len(user_data)
    first = 0x00  # TP-MTI SMS-DELIVER
    if last_of_batch:
        first |= 0x04  # TP-MMS: no more messages waiting
    if concatenated:
        first |= 0x40  # TP-UDHI
    tpdu = (
        bytes([first])
        + encode_address(originator)
        + bytes([0x00, dcs])  # TP-PID, TP-DCS
        + service_centre_time_stamp(now)
        + bytes([length])
        + user_data
    )
    return "00" + tpdu.hex().upper(), len(tpdu)


# ---------------------------------------------------------------------------------------
# The modem.


class Terminate(Exception):
    """A signal asked us to stop."""


def log(message):
    try:
        sys.stderr.write(f"fake_modem: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def split_outside_quotes(text, separator):
    parts, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


class CommandError(Exception):
    """A final result other than OK: the line to send."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


ERROR = "ERROR"
CMS_NOT_ALLOWED = "+CMS ERROR: 302"
CMS_NOT_SUPPORTED = "+CMS ERROR: 303"
CMS_INVALID_PDU = "+CMS ERROR: 304"
CMS_INVALID_INDEX = "+CMS ERROR: 321"


def integer(value, low, high):
    value = value.strip()
    if not value.isdigit() or not low <= int(value) <= high:
        raise CommandError(ERROR)
    return int(value)


class Slot:
    def __init__(self, pdu, tpdu_len, sequence):
        self.pdu = pdu
        self.tpdu_len = tpdu_len
        self.stat = 0  # 0 received unread, 1 received read (TS 27.005 §3.1 <stat>)
        self.sequence = sequence


class Modem:
    def __init__(self, master, slave, device, records):
        self.master = master
        self.slave = slave
        self.device = device
        self.records = records
        self.output = bytearray()
        self.stdout_broken = False
        # Settings, as the commands leave them.
        self.echo = True
        self.cmee = 0
        self.cmgf = 0
        self.creg = 0
        self.cnmi = None  # (mode, mt, bm, ds, bfr) once AT+CNMI was given
        self.csca = "+33609001390"
        self.memories = [MEMORY, MEMORY, MEMORY]
        # State.
        self.slots = {}
        self.sequence = 0
        self.next_mr = 0
        self.next_reference = 0
        self.line = bytearray()
        self.line_overflow = False
        self.prompt = None  # the AT+CMGS length while the "> " prompt waits for a PDU
        self.pdu = bytearray()
        self.pdu_invalid = False
        self.held = []  # unsolicited codes held while the prompt is open
        self.exclusive_check = True
        self.exclusive_checked = 0.0
        self.holder = None

    # --- output -------------------------------------------------------------------

    def event(self, **fields):
        if self.stdout_broken:
            return
        try:
            sys.stdout.write(json.dumps(fields) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.stdout_broken = True

    def write(self, data):
        if isinstance(data, str):
            data = data.encode("ascii", "replace")
        self.output += data
        if len(self.output) > MAX_OUTPUT:
            # Nobody reads the port: keep the newest bytes only.
            del self.output[: len(self.output) - MAX_OUTPUT]

    def flush(self):
        while self.output:
            try:
                written = os.write(self.master, self.output[:4096])
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.EIO, errno.EAGAIN):
                    return
                raise
            del self.output[:written]

    def respond(self, info, final):
        text = "".join(f"\r\n{line}\r\n" for line in info)
        self.write(text + f"\r\n{final}\r\n")

    def unsolicited(self, line):
        if self.prompt is not None:
            self.held.append(line)
        else:
            self.write(f"\r\n{line}\r\n")

    # --- the port -------------------------------------------------------------------

    def feed(self, data):
        for byte in data:
            if self.prompt is not None:
                self.feed_pdu(byte)
                continue
            if byte == ESC:
                # In command mode an ESC ends nothing: what came before the next "AT" is
                # dropped anyway (V.250), so is a half line a killed opener left.
                self.line.clear()
                self.line_overflow = False
            elif byte == CR:
                if self.echo:
                    self.write(b"\r")
                line, overflow = bytes(self.line), self.line_overflow
                self.line.clear()
                self.line_overflow = False
                if not overflow:
                    try:
                        self.command_line(line)
                    except Exception as error:  # a bug of ours must not end the modem
                        log(f"internal error on {line!r}: {error!r}")
                        self.prompt = None
                        self.respond([], ERROR)
            elif byte in (BS, DEL):
                if self.line:
                    self.line.pop()
                    if self.echo:
                        self.write(b"\x08 \x08")
            elif byte < 0x20:
                continue  # LF after CR, and other control bytes
            else:
                if self.echo:
                    self.write(bytes([byte]))
                if len(self.line) >= MAX_LINE:
                    self.line_overflow = True
                else:
                    self.line.append(byte)

    def feed_pdu(self, byte):
        if byte == CTRL_Z:
            self.submit()
        elif byte == ESC:
            # TS 27.005 §3.5.1: ESC cancels the message; nothing is sent.
            self.prompt = None
            self.respond([], "OK")
            self.release_held()
        else:
            if self.echo and byte >= 0x20:
                self.write(bytes([byte]))
            if byte in (CR, LF, 0x20, 0x09):
                return
            if chr(byte) not in "0123456789abcdefABCDEF":
                self.pdu_invalid = True
            elif len(self.pdu) < MAX_PDU_HEX:
                self.pdu.append(byte)
            else:
                self.pdu_invalid = True

    def release_held(self):
        held, self.held = self.held, []
        for line in held:
            self.unsolicited(line)

    def submit(self):
        length, self.prompt = self.prompt, None
        hexed = self.pdu.decode("ascii").upper()
        invalid = self.pdu_invalid
        self.pdu.clear()
        self.pdu_invalid = False
        reason = None
        if invalid:
            reason = "not hexadecimal, or too long"
        elif not hexed or len(hexed) % 2:
            reason = "an odd number of hex digits, or none"
        else:
            octets = bytes.fromhex(hexed)
            sca = octets[0]
            tpdu = len(octets) - 1 - sca
            if tpdu != length:
                reason = f"{tpdu} TPDU octets after an SMSC field of {sca}, AT+CMGS said {length}"
            elif octets[1 + sca] & 0x03 != 0x01:
                reason = "not an SMS-SUBMIT (TP-MTI)"
        if reason is not None:
            log(f"AT+CMGS={length}: PDU refused: {reason}")
            self.event(event="rejected", length=length, pdu=hexed, reason=reason)
            self.respond([], CMS_INVALID_PDU)
        else:
            mr = self.next_mr
            self.next_mr = (self.next_mr + 1) % 256
            record = {"event": "submitted", "length": length, "pdu": hexed, "mr": mr}
            self.event(**record)
            if self.records is not None:
                try:
                    self.records.write(json.dumps(record) + "\n")
                    self.records.flush()
                except OSError as error:
                    log(f"--records: {error}")
            self.respond([f"+CMGS: {mr}"], "OK")
        self.release_held()

    # --- commands --------------------------------------------------------------------

    def command_line(self, raw):
        text = raw.decode("utf-8", "replace")
        start = text.upper().find("AT")
        if start < 0:
            if text.strip():
                log(f"ignored (no AT): {text!r}")
            return
        line = text[start:].rstrip()
        self.event(event="command", line=line)
        info, after = [], []
        try:
            for command in self.commands(line[2:]):
                result = command(info, after)
                if result == "prompt":
                    # TS 27.005 §3.5.1: the prompt is <CR><LF><greater_than><space>.
                    self.write("\r\n> ")
                    return
        except CommandError as error:
            self.respond(info, error.result)
            return
        self.respond(info, "OK")
        for line in after:
            self.unsolicited(line)

    def commands(self, body):
        """The commands of one line (V.250 §5.2): basic ones (E0, Z, &F, S0=0, I, ...)
        and extended ones (+NAME, +NAME?, +NAME=?, +NAME=args) separated by ';'."""
        # Spaces are ignored outside quoted strings.
        compact, quoted = "", False
        for char in body:
            if char == '"':
                quoted = not quoted
            if char != " " or quoted:
                compact += char
        position = 0
        found = []
        while position < len(compact):
            char = compact[position]
            if char == ";":
                position += 1
            elif char in "+^$%*#":
                end = position + 1
                while end < len(compact) and (compact[end].isalnum() or compact[end] in "_"):
                    end += 1
                name = compact[position:end].upper()
                rest = split_outside_quotes(compact[end:], ";")
                argument = rest[0]
                position = end + len(argument)
                found.append(self.extended(name, argument))
            else:
                match = re.match(r"(S\d+)(=\d*|\?)|(&?[A-Z])(\d*)", compact[position:], re.I)
                if not match:
                    raise CommandError(ERROR)
                if match.group(1):
                    position += match.end()
                    found.append(lambda info, after: None)
                    continue
                letter, digits = match.group(3).upper(), match.group(4)
                position += match.end()
                found.append(self.basic(letter, digits))
        return found

    def basic(self, letter, digits):
        def run(info, after):
            if letter == "E":
                if digits not in ("", "0", "1"):
                    raise CommandError(ERROR)
                self.echo = digits == "1"
            elif letter in ("Z", "&F"):
                self.echo = True
            elif letter == "I":
                info.extend([MANUFACTURER, MODEL, f"Revision: {REVISION}"])
            else:
                log(f"basic command answered OK: {letter}{digits}")

        return run

    def extended(self, name, argument):
        if argument.startswith("=?"):
            op, args = "test", []
        elif argument.startswith("?"):
            op, args = "query", []
        elif argument.startswith("="):
            op, args = "set", split_outside_quotes(argument[1:], ",")
        else:
            op, args = "exec", []
        handler = {
            "+CMEE": self.cmee_command,
            "+CPIN": self.cpin_command,
            "+CMGF": self.cmgf_command,
            "+CSCA": self.csca_command,
            "+CNMI": self.cnmi_command,
            "+CREG": self.creg_command,
            "+CSQ": self.csq_command,
            "+CGMI": self.identity(MANUFACTURER),
            "+GMI": self.identity(MANUFACTURER),
            "+CGMM": self.identity(MODEL),
            "+GMM": self.identity(MODEL),
            "+CGMR": self.identity(REVISION),
            "+GMR": self.identity(REVISION),
            "+CGSN": self.identity(IMEI),
            "+GSN": self.identity(IMEI),
            "+CIMI": self.identity(IMSI),
            "+CPMS": self.cpms_command,
            "+CMGR": self.cmgr_command,
            "+CMGD": self.cmgd_command,
            "+CMGL": self.cmgl_command,
            "+CMGS": self.cmgs_command,
        }.get(name)

        def run(info, after):
            if handler is None:
                log(f"unknown command answered OK: AT{name}{argument}")
                return None
            return handler(op, args, info, after)

        return run

    def identity(self, value):
        def answer(op, args, info, after):
            if op in ("exec", "test"):
                if op == "exec":
                    info.append(value)
                return
            raise CommandError(ERROR)

        return answer

    def cmee_command(self, op, args, info, after):
        if op == "set":
            self.cmee = integer(args[0] or "0", 0, 2)
        elif op == "query":
            info.append(f"+CMEE: {self.cmee}")
        elif op == "test":
            info.append("+CMEE: (0-2)")

    def cpin_command(self, op, args, info, after):
        if op == "query":
            info.append("+CPIN: READY")
        elif op == "exec":
            raise CommandError(ERROR)

    def cmgf_command(self, op, args, info, after):
        if op == "set":
            self.cmgf = integer(args[0] or "0", 0, 1)
        elif op == "query":
            info.append(f"+CMGF: {self.cmgf}")
        elif op == "test":
            info.append("+CMGF: (0,1)")

    def csca_command(self, op, args, info, after):
        if op == "set":
            number = unquote(args[0])
            if not re.fullmatch(r"\+?[0-9]{1,20}", number):
                raise CommandError(ERROR)
            self.csca = number
        elif op == "query":
            kind = 145 if self.csca.startswith("+") else 129
            info.append(f'+CSCA: "{self.csca}",{kind}')

    def cnmi_command(self, op, args, info, after):
        ranges = [(0, 3), (0, 3), (0, 3), (0, 2), (0, 1)]
        if op == "set":
            if len(args) > 5:
                raise CommandError(ERROR)
            current = list(self.cnmi or (0, 0, 0, 0, 0))
            for position, value in enumerate(args):
                if value.strip():
                    current[position] = integer(value, *ranges[position])
            self.cnmi = tuple(current)
            # A new AT+CNMI (a gateway started again) learns of every message kept.
            after.extend(self.announcements())
        elif op == "query":
            info.append("+CNMI: {},{},{},{},{}".format(*(self.cnmi or (0, 0, 0, 0, 0))))
        elif op == "test":
            info.append("+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)")

    def creg_command(self, op, args, info, after):
        if op == "set":
            self.creg = integer(args[0] or "0", 0, 2)
        elif op == "query":
            if self.creg == 2:
                info.append(f'+CREG: {self.creg},1,"00C3","0000A13F"')
            else:
                info.append(f"+CREG: {self.creg},1")
        elif op == "test":
            info.append("+CREG: (0-2)")

    def csq_command(self, op, args, info, after):
        if op == "exec":
            info.append("+CSQ: 20,99")
        elif op == "test":
            info.append("+CSQ: (0-31,99),(0-7,99)")
        else:
            raise CommandError(ERROR)

    def cpms_command(self, op, args, info, after):
        used = len(self.slots)
        if op == "set":
            if not 1 <= len(args) <= 3:
                raise CommandError(ERROR)
            names = [unquote(arg).upper() for arg in args]
            if any(name != MEMORY for name in names):
                raise CommandError(CMS_NOT_SUPPORTED)
            self.memories[: len(names)] = names
            info.append("+CPMS: " + ",".join(f"{used},{CAPACITY}" for _ in range(3)))
        elif op == "query":
            info.append("+CPMS: " + ",".join(f'"{name}",{used},{CAPACITY}' for name in self.memories))
        elif op == "test":
            info.append('+CPMS: ("SM"),("SM"),("SM")')
        else:
            raise CommandError(ERROR)

    def pdu_mode_only(self):
        if self.cmgf != 0:
            raise CommandError(CMS_NOT_ALLOWED)

    def cmgr_command(self, op, args, info, after):
        if op == "test":
            return
        if op != "set" or len(args) != 1:
            raise CommandError(ERROR)
        self.pdu_mode_only()
        index = args[0].strip()
        if not index.isdigit():
            raise CommandError(ERROR)
        slot = self.slots.get(int(index))
        if slot is None:
            raise CommandError(CMS_INVALID_INDEX)
        info.append(f"+CMGR: {slot.stat},,{slot.tpdu_len}")
        info.append(slot.pdu)
        slot.stat = 1
        self.event(event="read", index=int(index))

    def cmgl_command(self, op, args, info, after):
        if op == "test":
            info.append("+CMGL: (0-4)")
            return
        self.pdu_mode_only()
        wanted = integer(args[0], 0, 4) if op == "set" else 0
        for index in sorted(self.slots):
            slot = self.slots[index]
            if wanted == 4 or wanted == slot.stat:
                info.append(f"+CMGL: {index},{slot.stat},,{slot.tpdu_len}")
                info.append(slot.pdu)
                slot.stat = 1
                self.event(event="read", index=index)

    def cmgd_command(self, op, args, info, after):
        if op == "test":
            info.append("+CMGD: ({}),(0-4)".format(",".join(str(i) for i in sorted(self.slots))))
            return
        if op != "set" or not 1 <= len(args) <= 2:
            raise CommandError(ERROR)
        flag = integer(args[1], 0, 4) if len(args) == 2 and args[1].strip() else 0
        if flag == 0:
            index = integer(args[0], 0, 255)
            if not 1 <= index <= CAPACITY:
                raise CommandError(CMS_INVALID_INDEX)
            doomed = [index] if index in self.slots else []
        else:
            # 1: read ones; 2, 3 also sent and unsent ones (none kept here); 4: all.
            doomed = [i for i in sorted(self.slots) if flag == 4 or self.slots[i].stat == 1]
        for index in doomed:
            del self.slots[index]
            self.event(event="deleted", index=index)

    def cmgs_command(self, op, args, info, after):
        if op == "test":
            return
        if op != "set" or len(args) != 1:
            raise CommandError(ERROR)
        self.pdu_mode_only()
        value = args[0].strip()
        if not value.isdigit():
            raise CommandError(ERROR)
        length = int(value)
        if not 7 <= length <= 164:
            raise CommandError(CMS_INVALID_PDU)
        self.prompt = length
        self.pdu.clear()
        self.pdu_invalid = False
        return "prompt"

    # --- the network ----------------------------------------------------------------

    def announcing(self):
        return self.cnmi is not None and self.cnmi[1] != 0

    def announcements(self, always=False):
        if not (always or self.announcing()):
            return []
        kept = sorted(self.slots.items(), key=lambda item: item[1].sequence)
        return [f'+CMTI: "{MEMORY}",{index}' for index, _ in kept]

    def announce_again(self):
        for line in self.announcements(always=True):
            self.unsolicited(line)

    def deliver(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("deliver takes an object")
        originator, text = spec.get("from"), spec.get("text")
        if not isinstance(originator, str) or not originator:
            raise ValueError('deliver needs "from", a non-empty string')
        if not isinstance(text, str):
            raise ValueError('deliver needs "text", a string')
        dcs, parts = split_text(text)
        total = len(parts)
        if total > 255:
            raise ValueError(f"{total} parts: at most 255")
        reference = spec.get("reference")
        if reference is None:
            reference = self.next_reference
            if total > 1:
                self.next_reference = (self.next_reference + 1) % 256
        elif isinstance(reference, bool) or not isinstance(reference, int) or not 0 <= reference <= 255:
            raise ValueError('"reference" is an integer 0-255')
        wanted = spec.get("parts")
        if wanted is None:
            wanted = list(range(1, total + 1))
        if not isinstance(wanted, list) or not all(
            isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= total for k in wanted
        ):
            raise ValueError(f'"parts" lists part numbers 1-{total}')
        free = [i for i in range(1, CAPACITY + 1) if i not in self.slots]
        if len(free) < len(wanted):
            raise ValueError(f"memory full: {len(free)} free slots for {len(wanted)} parts")
        # Encode all before storing any: an originator that cannot be encoded stores none.
        now = datetime.datetime.now().astimezone().replace(microsecond=0)
        pdus = [
            deliver_pdu(originator, dcs, parts[k - 1], reference, k, total, position == len(wanted) - 1, now)
            for position, k in enumerate(wanted)
        ]
        for k, (pdu, tpdu_len), index in zip(wanted, pdus, free):
            self.sequence += 1
            self.slots[index] = Slot(pdu, tpdu_len, self.sequence)
            stored = {"event": "stored", "index": index, "part": k, "parts": total}
            if total > 1:
                stored["reference"] = reference
            self.event(**stored)
            if self.announcing():
                self.unsolicited(f'+CMTI: "{MEMORY}",{index}')

    def control(self, line):
        line = line.strip()
        if not line:
            return
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("a control line is a JSON object")
            handled = False
            if "deliver" in message:
                self.deliver(message["deliver"])
                handled = True
            if message.get("announce_again"):
                self.announce_again()
                handled = True
            if message.get("list"):
                slots = [
                    {"index": index, "stat": slot.stat, "pdu": slot.pdu}
                    for index, slot in sorted(self.slots.items())
                ]
                self.event(event="slots", slots=slots)
                handled = True
            if not handled:
                raise ValueError("nothing to do in this control line")
        except Exception as error:  # a control line never ends the modem
            self.event(event="error", message=f"{error}: {line[:200]}")

    # --- the exclusive mode a killed opener leaves --------------------------------

    def release_exclusive(self):
        """Serial libraries (the gateway's included) set TIOCEXCL when they open the
        port and clear it when they close it. A killed gateway never clears it, and since
        we hold the slave the tty lives on exclusive: the next opener without
        CAP_SYS_ADMIN would get EBUSY. Once nobody else holds the slave, clear it."""
        now = time.monotonic()
        if not self.exclusive_check or now - self.exclusive_checked < 0.5:
            return
        self.exclusive_checked = now
        try:
            exclusive = struct.unpack("i", fcntl.ioctl(self.slave, TIOCGEXCL, bytes(4)))[0]
        except OSError:
            self.exclusive_check = False
            return
        if not exclusive:
            self.holder = None
            return
        if self.holder is not None and self.holds(self.holder):
            return
        self.holder = self.find_holder()
        if self.holder is None:
            try:
                fcntl.ioctl(self.slave, TIOCNXCL)
                log("the port was left exclusive by an opener that is gone: cleared")
            except OSError:
                self.exclusive_check = False

    def holds(self, pid):
        try:
            directory = f"/proc/{pid}/fd"
            for fd in os.listdir(directory):
                try:
                    if os.readlink(f"{directory}/{fd}") == self.device:
                        return True
                except OSError:
                    continue
        except OSError:
            pass
        return False

    def find_holder(self):
        own = os.getpid()
        try:
            pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
        except OSError:
            return -1  # cannot tell: leave it alone
        for pid in pids:
            if pid != own and self.holds(pid):
                return pid
        return None


def make_raw(fd):
    attributes = termios.tcgetattr(fd)
    iflag, oflag, cflag, lflag = attributes[0:4]
    iflag &= ~(
        termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
        | termios.IGNCR | termios.ICRNL | termios.IXON | termios.IXOFF | termios.INPCK
    )
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag &= ~(termios.CSIZE | termios.PARENB)
    cflag |= termios.CS8 | termios.CREAD | termios.CLOCAL
    attributes[0:4] = [iflag, oflag, cflag, lflag]
    attributes[6][termios.VMIN] = 1
    attributes[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attributes)


def make_link(link, device):
    if os.path.lexists(link) and not os.path.islink(link):
        raise SystemExit(f"fake_modem: {link} exists and is not a symlink: not replaced")
    temporary = f"{link}.fake_modem.{os.getpid()}"
    os.symlink(device, temporary)
    os.replace(temporary, link)


def remove_link(link, device):
    try:
        if os.readlink(link) == device:
            os.unlink(link)
    except OSError:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--link", required=True, help="symlink to create to the pty slave")
    parser.add_argument("--records", help="append each submitted PDU here as a JSON line")
    arguments = parser.parse_args()

    def terminate(signum, frame):
        raise Terminate()

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, terminate)

    master, slave = os.openpty()
    device = os.ttyname(slave)
    make_raw(slave)
    os.set_blocking(master, False)
    records = open(arguments.records, "a", encoding="utf-8") if arguments.records else None
    make_link(arguments.link, device)
    modem = Modem(master, slave, device, records)
    stdin = sys.stdin.fileno()
    pending = b""
    try:
        modem.event(event="ready", device=device)
        while True:
            writing = [master] if modem.output else []
            readable, writable, _ = select.select([master, stdin], writing, [], 0.5)
            if master in readable:
                try:
                    data = os.read(master, 4096)
                except BlockingIOError:
                    data = b""
                except OSError as error:
                    if error.errno != errno.EIO:
                        raise
                    data = b""
                modem.feed(data)
            if stdin in readable:
                chunk_read = os.read(stdin, 65536)
                if not chunk_read:
                    if pending:
                        modem.control(pending.decode("utf-8", "replace"))
                    break
                pending += chunk_read
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    modem.control(line.decode("utf-8", "replace"))
            if modem.output:
                modem.flush()
            modem.release_exclusive()
    except Terminate:
        pass
    finally:
        remove_link(arguments.link, device)
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if records is not None:
            records.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
