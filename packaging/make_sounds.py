"""Synthesise the alert sounds in ``resources/``: ``alert.wav``, the new-arrival chime, and one per alert kind.

Usage::

    python packaging/make_sounds.py [--dir DIR]

Each kind of alert has its own sound, so a rep can tell without looking
what happened (a rep chooses which plays for what in Preferences): ``team``
is the chime a fourth lower and softer (a team arrival is less personal),
``transfer`` three quick rising notes (someone handed you a customer),
``invitation`` two knocks on one note, ``overdue`` a falling fourth (a
falling interval reads as "something is wrong"), ``offer`` three short high
pips.

The chime is two soft bell tones a perfect fourth apart, rising (G5 then
C6), because a rising interval reads as "something arrived" rather than
"something failed", and a fourth stays consonant when the two tails overlap.
It lasts 0.4 s, peaks at -6 dBFS so that it does not startle someone wearing
a headset, and is 16-bit mono at 22050 Hz: every sound API on every platform
plays that, and nothing in a chime needs more than 11 kHz of bandwidth.

Only the standard library is used and the synthesis is deterministic, so the
committed file can be checked against a fresh rendering.
"""

from __future__ import annotations

import argparse
import math
import sys
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "resources"

SAMPLE_RATE = 22050
DURATION_S = 0.4
PEAK = 0.5  # -6 dBFS
ATTACK_S = 0.004  # long enough to avoid a click, short enough to sound struck
RELEASE_S = 0.03  # fade-out that lands the last sample exactly on zero

# Relative (frequency ratio, amplitude) of the partials of one bell tone: a
# fundamental with a quiet octave and a faint twelfth gives a glassy chime
# rather than a bare beep.
PARTIALS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (2.0, 0.28), (3.0, 0.08))


@dataclass(frozen=True)
class Tone:
    """One struck note of the chime."""

    start_s: float
    frequency_hz: float
    decay_per_s: float  # exponential decay rate of the envelope
    gain: float


CHIME: tuple[Tone, ...] = (
    Tone(start_s=0.0, frequency_hz=783.99, decay_per_s=14.0, gain=0.8),  # G5
    Tone(start_s=0.13, frequency_hz=1046.50, decay_per_s=9.0, gain=1.0),  # C6
)

# Every sound the console ships, by resource name (without ".wav").
SOUNDS: dict[str, tuple[Tone, ...]] = {
    "alert": CHIME,
    "team": (
        Tone(start_s=0.0, frequency_hz=587.33, decay_per_s=14.0, gain=0.8),  # D5
        Tone(start_s=0.13, frequency_hz=783.99, decay_per_s=10.0, gain=1.0),  # G5
    ),
    "transfer": (
        Tone(start_s=0.0, frequency_hz=1046.50, decay_per_s=22.0, gain=0.8),  # C6
        Tone(start_s=0.08, frequency_hz=1318.51, decay_per_s=22.0, gain=0.9),  # E6
        Tone(start_s=0.16, frequency_hz=1567.98, decay_per_s=12.0, gain=1.0),  # G6
    ),
    "invitation": (
        Tone(start_s=0.0, frequency_hz=880.0, decay_per_s=20.0, gain=1.0),  # A5
        Tone(start_s=0.15, frequency_hz=880.0, decay_per_s=12.0, gain=1.0),  # A5
    ),
    "overdue": (
        Tone(start_s=0.0, frequency_hz=1046.50, decay_per_s=14.0, gain=1.0),  # C6
        Tone(start_s=0.13, frequency_hz=783.99, decay_per_s=9.0, gain=0.9),  # G5
    ),
    "offer": (
        Tone(start_s=0.0, frequency_hz=1174.66, decay_per_s=30.0, gain=1.0),  # D6
        Tone(start_s=0.09, frequency_hz=1174.66, decay_per_s=30.0, gain=1.0),
        Tone(start_s=0.18, frequency_hz=1174.66, decay_per_s=18.0, gain=1.0),
    ),
}


def synthesise(tones: tuple[Tone, ...] = CHIME, rate: int = SAMPLE_RATE) -> list[float]:
    """Return the chime as floating-point samples in [-PEAK, PEAK]."""
    count = round(DURATION_S * rate)
    samples = [0.0] * count
    for tone in tones:
        first = round(tone.start_s * rate)
        for n in range(first, count):
            t = (n - first) / rate
            envelope = tone.gain * min(1.0, t / ATTACK_S) * math.exp(-tone.decay_per_s * t)
            phase = 2.0 * math.pi * tone.frequency_hz * t
            samples[n] += envelope * sum(
                amplitude * math.sin(ratio * phase) for ratio, amplitude in PARTIALS
            )
    release = round(RELEASE_S * rate)
    for i in range(release):
        samples[count - 1 - i] *= i / release
    loudest = max(abs(s) for s in samples)
    return [s * PEAK / loudest for s in samples]


def write_wav(samples: list[float], path: Path, rate: int = SAMPLE_RATE) -> None:
    """Write *samples* as a 16-bit mono little-endian PCM WAV file."""
    pcm = array("h", (round(s * 32767) for s in samples))
    if sys.byteorder == "big":
        pcm.byteswap()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=OUT, help=f"output directory (default {OUT})")
    args = parser.parse_args(argv)
    for name, tones in SOUNDS.items():
        path = args.dir / f"{name}.wav"
        write_wav(synthesise(tones), path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
