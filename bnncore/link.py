"""The serial link to an accelerator on a board: frames, their encoder and decoder, and the host
driver. The board's side is hw/link.py, built from the constants here; docs/link.md is the
protocol's manual, with byte examples.

A frame, both ways::

    0xB5 | command (1 byte) | length (2 bytes, little-endian) | payload (length bytes) | CRC (2 bytes)

CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF; ``binascii.crc_hqx(data, 0xFFFF)``)
of the command, length and payload bytes, sent low byte first.

Commands (host to board) and their answers (board to host, same command byte):

- ``INFO`` (0x01), no payload: the design's description (``DeviceInfo``).
- ``CLASSIFY`` (0x02), an image's input beats (each ``ceil(width / 8)`` bytes, least
  significant first): the output word (class index in the low bits, then the scores).
- ``WRITE`` (0x03), a memory's index (1 byte), a word address (4 bytes) and the word
  (``ceil(width / 8)`` bytes, least significant first), on a design built with writable
  memories: an empty answer once the word is written (after its CRC was checked).
- ``NETWORK`` (0x04), 8 bytes: the network identity INFO reports from now on (``load``
  clears it before the first word and sets it after the last).

Anything the board cannot do is answered by an ``ERROR`` frame (0xEE) of two bytes: the error
code and the command byte it answers. The board then goes on with the next frame; nothing it
stores changes. Frames may follow each other without waiting for answers, up to the board's
receive buffer (``DeviceInfo.rx_buffer`` bytes, counting the frames not answered yet): answers
come in the order of the frames.

The transport is anything with ``write(bytes)`` and ``read(n) -> bytes`` (at most ``n`` bytes;
fewer, or none, when its timeout passes): pyserial's ``Serial``, or the simulation's
(sim/tb_link.py), so that the same driver runs against a board and against the RTL.
"""

from __future__ import annotations

import binascii
import math
import struct
import time
from dataclasses import dataclass

import numpy as np

from .errors import BnnError, UsageError

__all__ = ["SYNC", "INFO", "CLASSIFY", "ERROR", "ERRORS", "LinkError", "DeviceInfo", "crc16", "encode",
           "Decoder", "Link", "info_blob", "image_payloads", "decode_output", "open_serial", "design_digest"]

SYNC = 0xB5
INFO, CLASSIFY, WRITE, NETWORK, ERROR = 0x01, 0x02, 0x03, 0x04, 0xEE
#: error code -> meaning
ERRORS = {1: "bad CRC", 2: "wrong length for the command", 3: "unknown command",
          4: "frame truncated (the line went idle mid-frame)", 5: "receive buffer overrun (bytes lost)",
          6: "no such memory", 7: "address past the memory's end",
          8: "the design's memories are read-only (built without --writable)"}
BAD_CRC, BAD_LENGTH, UNKNOWN_COMMAND, TIMEOUT, OVERRUN, NO_MEMORY, BAD_ADDRESS, READ_ONLY = range(1, 9)
#: INFO flags
WRITABLE = 1
PROTOCOL_VERSION = 1
MAX_PAYLOAD = 0xFFFF
#: the longest wait for one answer a Link accepts, seconds
MAX_TIMEOUT = 3600.0


class LinkError(BnnError, RuntimeError):
    """The board answered an error, or the link broke (no answer, a corrupt frame)."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data``."""
    return binascii.crc_hqx(bytes(data), 0xFFFF)


def encode(command: int, payload: bytes = b"") -> bytes:
    """One frame."""
    payload = bytes(payload)
    if not 0 <= command <= 0xFF:
        raise UsageError(f"a command is a byte, not {command!r}")
    if len(payload) > MAX_PAYLOAD:
        raise UsageError(f"a frame holds at most {MAX_PAYLOAD:,} payload bytes, not {len(payload):,}")
    body = bytes([command]) + struct.pack("<H", len(payload)) + payload
    return bytes([SYNC]) + body + struct.pack("<H", crc16(body))


class Decoder:
    """Frames out of a byte stream: ``feed(data)`` returns the (command, payload) of each frame
    it completes. Bytes before a sync byte are skipped; a frame whose CRC is wrong raises
    LinkError."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list:
        self._buf += data
        frames = []
        while True:
            start = self._buf.find(SYNC)
            if start < 0:
                self._buf.clear()
                return frames
            del self._buf[:start]
            if len(self._buf) < 4:
                return frames
            n = struct.unpack_from("<H", self._buf, 2)[0]
            if len(self._buf) < 6 + n:
                return frames
            body, crc = bytes(self._buf[1:4 + n]), struct.unpack_from("<H", self._buf, 4 + n)[0]
            del self._buf[:6 + n]
            if crc16(body) != crc:
                raise LinkError(f"an answer with a bad CRC (command 0x{body[0]:02x}, {n} bytes): "
                                "the line is noisy or the baud rates differ")
            frames.append((body[0], body[3:]))

    @property
    def pending(self) -> int:
        return len(self._buf)


# --- what the board says of itself --------------------------------------------------------

_INFO_HEAD = struct.Struct("<BBIIHHHBHBBHI8s8sH")
#: where the network identity sits in INFO's payload (the board keeps it in a register)
INFO_NETWORK_OFFSET = _INFO_HEAD.size - 18


@dataclass(frozen=True)
class DeviceInfo:
    """The answer to INFO: what the design holds and how to talk to it."""
    version: int
    flags: int              # WRITABLE: its memories can be written over the link
    clock_hz: int
    baud: int
    rx_buffer: int          # bytes of receive buffer
    in_width: int           # bits per input beat
    in_beats: int           # beats per image
    value_bits: int         # bits per input value (1, or 8 for an 8-bit first layer)
    out_width: int          # bits of the output word
    class_bits: int
    score_bits: int
    classes: int
    interval: int           # cycles between images (the initiation interval, rounded up)
    network: str            # hex: the first 8 bytes of the built-in network's sha256
    design: str             # hex: the first 8 bytes of the digest of topology and folding
    spec: str               # the topology string

    @property
    def image_bytes(self) -> int:
        return self.in_beats * -(-self.in_width // 8)

    @property
    def out_bytes(self) -> int:
        return -(-self.out_width // 8)

    def seconds_per_image(self) -> float:
        """The link's own bound: an image's frame and its answer on the wire (10 bits a byte;
        the two directions overlap when frames are pipelined, so the longer one counts)."""
        return 10 * max(6 + self.image_bytes, 6 + self.out_bytes) / self.baud

    def accelerator_images_per_second(self) -> float:
        return self.clock_hz / max(1, self.interval)


def design_digest(info) -> str:
    """Hex digest of what a network's ROM files must share with a design to run right in it
    (``hw.identity.design_digest``: everything the logic fixes at generation)."""
    from bnncore.hw.identity import design_digest as digest
    return digest(info)


def info_blob(info, clock_hz: int, baud: int, rx_buffer: int, writable: bool = False, loaded: bool = False) -> bytes:
    """The INFO payload a design built from ``info`` (its RtlDesign, or rtl.json's object)
    answers; ``loaded``: its weights are loaded at run time, so it names no network until then."""
    from bnncore.hw.design import RtlDesign
    d = RtlDesign.from_json(info)
    spec = d.spec.encode("ascii")
    net = "0" * 16 if loaded else (d.network or {}).get("sha256") or "0" * 16
    return _INFO_HEAD.pack(PROTOCOL_VERSION, WRITABLE if writable else 0, int(clock_hz), int(baud), rx_buffer,
                           d.in_width, d.in_beats, d.in_value_bits, d.out_width, d.class_bits, d.score_bits,
                           d.topology[-1], math.ceil(d.interval), bytes.fromhex(net[:16]),
                           bytes.fromhex(design_digest(d)[:16]), len(spec)) + spec


def parse_info(payload: bytes) -> DeviceInfo:
    if len(payload) < _INFO_HEAD.size:
        raise LinkError(f"an INFO answer of {len(payload)} bytes; expected at least {_INFO_HEAD.size}")
    f = _INFO_HEAD.unpack_from(payload)
    spec = payload[_INFO_HEAD.size:_INFO_HEAD.size + f[-1]]
    if f[0] != PROTOCOL_VERSION:
        raise LinkError(f"the board speaks protocol version {f[0]}; this driver speaks {PROTOCOL_VERSION}")
    dev = DeviceInfo(*f[:13], network=f[13].hex(), design=f[14].hex(), spec=spec.decode("ascii", "replace"))
    rules = (("clock_hz", dev.clock_hz >= 1), ("baud", dev.baud >= 1), ("rx_buffer", dev.rx_buffer >= 1),
             ("in_width", dev.in_width >= 1), ("in_beats", dev.in_beats >= 1),
             ("value_bits", dev.value_bits in (1, 8) and dev.in_width % dev.value_bits == 0),
             ("out_width", dev.out_width >= 1), ("score_bits", dev.score_bits >= 1), ("classes", dev.classes >= 1),
             ("class_bits", (dev.classes - 1).bit_length() <= dev.class_bits <= 16),
             ("out_width", dev.out_width >= dev.class_bits + dev.classes * dev.score_bits),
             ("interval", dev.interval >= 1))
    bad = next((name for name, ok in rules if not ok), None)
    if bad:
        raise LinkError(f"the board's INFO answer is not a design's: field {bad} = {getattr(dev, bad)} (with "
                        f"{dev.classes} classes of {dev.score_bits}-bit scores, {dev.in_width}-bit input beats); "
                        "is the right bitstream loaded, at this baud rate?")
    return dev


# --- images and results -------------------------------------------------------------------

def image_payloads(values: np.ndarray, dev: DeviceInfo) -> list:
    """CLASSIFY payloads of images (N, values) in the network's (y, x, channel) order."""
    from bnncore.hw.layout import input_words
    nb = -(-dev.in_width // 8)
    words = input_words(np.asarray(values), dev.in_width, dev.in_beats, dev.value_bits)
    return [b"".join(w.to_bytes(nb, "little") for w in beats) for beats in words]


def decode_output(payload: bytes, dev: DeviceInfo) -> tuple:
    """(class, scores) of a CLASSIFY answer."""
    if len(payload) != dev.out_bytes:
        raise LinkError(f"a CLASSIFY answer of {len(payload)} bytes; the design's output word has {dev.out_bytes}")
    word = int.from_bytes(payload, "little")
    cls = word & ((1 << dev.class_bits) - 1)
    scores, sb = [], dev.score_bits
    for c in range(dev.classes):
        s = (word >> (dev.class_bits + c * sb)) & ((1 << sb) - 1)
        scores.append(s - (1 << sb) if s >> (sb - 1) else s)
    return cls, scores


# --- the driver ---------------------------------------------------------------------------

class Link:
    """The host's side: ``info()``, ``classify(values)``; ``transport`` as in the module doc.
    ``timeout``: seconds without a byte from the board before it is declared silent."""

    def __init__(self, transport, timeout: float = 2.0):
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
            raise UsageError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], not {timeout!r}")
        self.t, self.timeout = transport, float(timeout)
        self._dec = Decoder()
        self._frames = []
        self._info = None

    def _next(self) -> tuple:
        """The next whole frame. It must arrive within ``timeout`` seconds whatever else the
        board sends: bytes that make no frame (noise, a board streaming garbage) do not
        extend the wait."""
        deadline = time.monotonic() + self.timeout
        while not self._frames:
            if time.monotonic() > deadline:
                raise LinkError(f"no answer from the board within {self.timeout:g} s "
                                f"({self._dec.pending} bytes of a frame received): is it configured, "
                                "on this port, at this baud rate?")
            data = self.t.read(64)
            if data:
                self._frames += self._dec.feed(data)
        return self._frames.pop(0)

    def request(self, command: int, payload: bytes = b"") -> bytes:
        """Send one frame; return its answer's payload, or raise LinkError with the board's error."""
        self.t.write(encode(command, payload))
        return self._answer(command)

    def _answer(self, command: int) -> bytes:
        cmd, payload = self._next()
        if cmd == ERROR:
            code = payload[0] if payload else 0
            about = payload[1] if len(payload) > 1 else command
            raise LinkError(f"the board answered error {code} ({ERRORS.get(code, 'unknown')}) "
                            f"to a frame of command 0x{about:02x}")
        if cmd != command:
            raise LinkError(f"an answer to command 0x{cmd:02x} where 0x{command:02x} was expected")
        return payload

    def info(self) -> DeviceInfo:
        self._info = parse_info(self.request(INFO))
        return self._info

    def classify(self, values: np.ndarray, progress=None) -> tuple:
        """Classes (N,) and scores (N, classes) of images (N, values), pipelined: as many frames
        in flight as the board's receive buffer holds."""
        dev = self._info or self.info()
        values = np.asarray(values)
        room = dev.in_beats * dev.in_width // dev.value_bits
        if values.ndim != 2 or values.shape[1] > room:
            raise UsageError(f"images of shape {values.shape[1:]}; the design takes at most {room} values per image")
        classes = np.zeros(len(values), np.int64)
        scores = np.zeros((len(values), dev.classes), np.int64)
        frames = [encode(CLASSIFY, p) for p in image_payloads(values, dev)]
        for k, out in enumerate(self._pipeline(frames, CLASSIFY, "image", progress)):
            classes[k], scores[k] = decode_output(out, dev)
        return classes, scores

    def _pipeline(self, frames: list, command: int, what: str, progress=None):
        """Send ``frames`` with as many in flight as the board's receive buffer holds; yield the
        answers' payloads in order."""
        dev = self._info or self.info()
        in_flight, sent, done = 0, 0, 0
        while done < len(frames):
            while sent < len(frames) and (sent == done or in_flight + len(frames[sent]) <= dev.rx_buffer):
                self.t.write(frames[sent])
                in_flight += len(frames[sent])
                sent += 1
            try:
                yield self._answer(command)
            except LinkError as e:
                raise LinkError(f"{what} {done}: {e}") from None
            in_flight -= len(frames[done])
            done += 1
            if progress:
                progress(done, len(frames))

    def load(self, net, info, progress=None) -> int:
        """Write ``net``'s weights and thresholds into the board's memories; return the words
        written. ``info``: the RtlDesign (or rtl.json) of the design the board holds (its
        topology and folding: the memories' layout). The board must have been built with writable memories; while
        it loads, INFO reports the network 0000000000000000, and ``net``'s identity after the
        last word."""
        from bnncore.hw.design import RtlDesign, rom_images
        from bnncore.hw.identity import check_network
        info = RtlDesign.from_json(info)
        dev = self.info()
        if not dev.flags & WRITABLE:
            raise LinkError("the board's design has read-only memories: build it with "
                            "`bnn synth --board ... --writable` to load networks into it")
        if dev.design != design_digest(info)[:16]:
            raise LinkError(f"the board holds a design of {dev.spec} ({dev.design}), not the RTL's {info.spec} "
                            f"({design_digest(info)[:16]}): its logic differs (layers, folding, pools, padding or "
                            "widths), so this RTL's memory layout does not fit it; give the RTL folder the board's "
                            "bitstream was built from")
        plan = info.plan
        try:
            check_network(net, plan)
        except ValueError as e:
            raise LinkError(f"network {net.spec} cannot run in the board's design {dev.spec}: {e}") from None
        images = rom_images(net, plan)
        frames = []
        for k, name in enumerate(info.memories):
            width, words = images[name]
            nb = -(-width // 8)
            frames += [encode(WRITE, bytes([k]) + struct.pack("<I", a) + w.to_bytes(nb, "little"))
                       for a, w in enumerate(words)]
        self.request(NETWORK, bytes(8))
        for _ in self._pipeline(frames, WRITE, "word", progress):
            pass
        self.request(NETWORK, bytes.fromhex(net.digest()[:16]))
        self._info = None
        after = self.info()
        if after.network != net.digest()[:16] or after.design != dev.design:
            raise LinkError(f"after loading, the board names network {after.network} (design {after.design}), not "
                            f"{net.digest()[:16]} (design {dev.design}): the load did not take; reset the board "
                            "and load again")
        return len(frames)


def open_serial(port: str, baud: int, timeout: float = 0.05):
    """A pyserial port, 8N1, no flow control."""
    try:
        import serial
    except ImportError:
        raise LinkError("the serial link needs pyserial: pip install 'bnncore[board]' (or pip install pyserial)") from None
    try:
        return serial.Serial(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, OSError) as e:
        raise LinkError(f"{port}: cannot open it ({e})") from None
