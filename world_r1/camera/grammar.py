"""A small grammar of camera motions, parsed from a prompt's camera sentence or an explicit ``camera`` string.

Grammar (case-insensitive; a leading ``Camera``/``The camera`` and the final full stop are optional)::

    plan     := "fixed" | "static" | "still" | "stationary" | "locked (off)" | segment (SEQ segment)*
    segment  := clause (SIM clause)*              # clauses of one segment run at the same time
    clause   := speed* verb speed* direction? speed*
    SEQ      := "," | ";" | "then" | "and then" | "followed by" | "after that" | "afterwards"
    SIM      := "and" | "while" | "whilst" | "as" | "with"
    speed    := slowly/slow/gently/gradually/slightly (x0.5) | quickly/fast/rapidly/swiftly (x2)

Verbs (any of the forms ``pan``, ``pans``, ``panning``, ``panned``) and their directions, each mapped to one of seven
motion kinds with a sign (positive first):

    pan, rotate, turn, yaw       -> pan    right | left        (the view turns about the vertical axis)
    tilt                         -> tilt   up | down           (the view turns about the camera's x axis)
    dolly, push, pull            -> dolly  in/forward | out/back/backward   (push: in by default; pull: out)
    truck, track                 -> truck  right | left        (sideways travel)
    crane, pedestal, boom        -> crane  up | down           (vertical travel); rise/ascend: up, descend: down
    orbit, arc, circle           -> orbit  right | left        (travel around a point ahead, still facing it)
    zoom                         -> zoom   in | out                   (the focal length grows / shrinks; no travel)
    move, travel                 -> forward/in/back/out: dolly, left/right: truck, up/down: crane

A zoom changes the lens, not the pose: the image scales about its centre with no parallax, where a dolly travels and
near things grow faster than far ones. ``"dolly in while zooming out"`` is the vertigo shot.
Sign conventions (OpenCV camera axes, x right, y down, z forward) are applied in :mod:`world_r1.camera.trajectory`.

:func:`parse_camera` is strict and raises :class:`CameraParseError` naming the unknown word; :func:`plan_for_prompt`
is what rollouts and rewards use: an explicit ``camera`` string must parse, while free prompt text without a
parseable camera sentence falls back to the static plan (no warping; a static camera is expected).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

KINDS = ("pan", "tilt", "dolly", "truck", "crane", "orbit", "zoom")

_RIGHT_LEFT = {"right": 1, "left": -1}
_UP_DOWN = {"up": 1, "upward": 1, "upwards": 1, "down": -1, "downward": -1, "downwards": -1}
_IN_OUT = {"in": 1, "forward": 1, "forwards": 1, "out": -1, "back": -1, "backward": -1, "backwards": -1}

# verb -> (kind, directions -> sign, default sign when no direction is given, or None if one is required)
_VERBS: dict[str, tuple[str, dict[str, int], int | None]] = {
    "pan": ("pan", _RIGHT_LEFT, None),
    "rotate": ("pan", _RIGHT_LEFT, None),
    "turn": ("pan", _RIGHT_LEFT, None),
    "yaw": ("pan", _RIGHT_LEFT, None),
    "tilt": ("tilt", _UP_DOWN, None),
    "dolly": ("dolly", _IN_OUT, None),
    "push": ("dolly", _IN_OUT, 1),
    "pull": ("dolly", _IN_OUT, -1),
    "truck": ("truck", _RIGHT_LEFT, None),
    "track": ("truck", _RIGHT_LEFT, None),
    "crane": ("crane", _UP_DOWN, None),
    "pedestal": ("crane", _UP_DOWN, None),
    "boom": ("crane", _UP_DOWN, None),
    "rise": ("crane", {"up": 1}, 1),
    "ascend": ("crane", {"up": 1}, 1),
    "descend": ("crane", {"down": -1}, -1),
    "orbit": ("orbit", _RIGHT_LEFT, None),
    "arc": ("orbit", _RIGHT_LEFT, None),
    "circle": ("orbit", _RIGHT_LEFT, None),
    "zoom": ("zoom", {"in": 1, "out": -1}, None),
}
# "move"/"travel": the direction picks the kind
_MOVE = {**{d: ("dolly", s) for d, s in _IN_OUT.items()}, **{d: ("truck", s) for d, s in _RIGHT_LEFT.items()}}
_MOVE |= {d: ("crane", s) for d, s in _UP_DOWN.items()}

SPEEDS: dict[str, float] = {
    "slowly": 0.5,
    "slow": 0.5,
    "gently": 0.5,
    "gradually": 0.5,
    "slightly": 0.5,
    "quickly": 2.0,
    "quick": 2.0,
    "fast": 2.0,
    "rapidly": 2.0,
    "swiftly": 2.0,
}
_STATIC = {"fixed", "static", "still", "stationary", "locked", "locked-off", "motionless", "steady"}
_FILLER = {"camera", "the", "a", "an", "shot", "view", "smoothly", "steadily", "is", "remains", "stays", "holds", "off"}
_SEQUENTIAL = re.compile(r",|;|\band then\b|\bthen\b|\bfollowed by\b|\bafter that\b|\bafterwards\b")
_SIMULTANEOUS = re.compile(r"\b(?:and|while|whilst|as|with)\b")


#: what each motion kind does to the camera, positive direction first (OpenCV axes; :mod:`world_r1.camera.trajectory`)
MEANINGS: dict[str, str] = {
    "pan": "turns about the vertical axis; right: the view swings right",
    "tilt": "turns about the camera's x axis; up: the view swings up",
    "dolly": "travels along its heading; in: towards the scene (near things grow faster than far ones)",
    "truck": "travels sideways; right: to its right, the scene slides left",
    "crane": "travels vertically; up: the scene slides down",
    "orbit": "travels around a point ahead, turning to keep facing it; right: moves to its right and turns left",
    "zoom": "stays put and changes its focal length; in: longer, the whole view grows about its centre",
}


def camera_words_table() -> str:
    """The grammar's verbs as a Markdown table (words, motion, directions, default, what the camera does): the one
    table the grammar, the noise warp and every reward read, as printed in the README."""
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for verb, (kind, directions, default) in _VERBS.items():
        positive = "/".join(d for d, sign in directions.items() if sign > 0) or "-"
        negative = "/".join(d for d, sign in directions.items() if sign < 0) or "-"
        fallback = {None: "required", 1: positive.split("/")[0], -1: negative.split("/")[0]}[default]
        groups.setdefault((kind, positive, negative, fallback), []).append(verb)
    rows = ["| words | motion | directions (+ / -) | no direction | what the camera does |", "|---|---|---|---|---|"]
    for (kind, positive, negative, fallback), verbs in groups.items():
        rows.append(f"| {', '.join(verbs)} | {kind} | {positive} / {negative} | {fallback} | {MEANINGS[kind]} |")
    by_kind: dict[str, list[str]] = {}
    for direction, (kind, _) in _MOVE.items():
        by_kind.setdefault(kind, []).append(direction)
    moves = "; ".join(f"{kind}: {'/'.join(directions)}" for kind, directions in by_kind.items())
    rows.append(f"| move, travel | by direction | {moves} | required | as that motion |")
    return "\n".join(rows) + "\n"


class CameraParseError(ValueError):
    """A camera description uses a word or construction outside the grammar of this module."""


@dataclass(frozen=True)
class Motion:
    """One elementary motion: ``kind`` in :data:`KINDS`, ``sign`` +1/-1 (right, up, in: +1), ``speed`` multiplier."""

    kind: str
    sign: int
    speed: float = 1.0

    def describe(self) -> str:
        words = {"pan": ("right", "left"), "tilt": ("up", "down"), "dolly": ("in", "out"), "truck": ("right", "left")}
        words |= {"crane": ("up", "down"), "orbit": ("right", "left"), "zoom": ("in", "out")}
        speed = {0.5: " slowly", 2.0: " quickly"}.get(self.speed, "" if self.speed == 1.0 else f" x{self.speed:g}")
        return f"{self.kind} {words[self.kind][0 if self.sign > 0 else 1]}{speed}"


@dataclass(frozen=True)
class CameraPlan:
    """Segments played one after another over equal shares of the video; the motions of a segment run together.
    No segments means a static camera."""

    segments: tuple[tuple[Motion, ...], ...] = ()

    @property
    def is_static(self) -> bool:
        return not self.segments

    def mirrored(self) -> CameraPlan:
        """The same plan with every direction reversed (pan right -> pan left, dolly in -> dolly out)."""
        return CameraPlan(tuple(tuple(Motion(m.kind, -m.sign, m.speed) for m in segment) for segment in self.segments))

    def describe(self) -> str:
        """Canonical text, e.g. ``"dolly in, then pan right"``, that :func:`parse_camera` maps back to this plan
        when every speed is 0.5, 1 or 2 (other speeds, from repeated speed words, are written as ``x0.25``)."""
        if self.is_static:
            return "fixed"
        return ", then ".join(" and ".join(m.describe() for m in segment) for segment in self.segments)


STATIC = CameraPlan()


def _verb_base(word: str) -> str | None:
    """The verb of :data:`_VERBS` (or move/travel) that ``word`` is a form of: pan, pans, panning, panned, rising,
    dollies, dollied."""
    for verb in (*_VERBS, "move", "travel"):
        forms = {verb, verb + "s", verb + "es", verb + "ing", verb + "ed", verb + "d", verb + "ling", verb + "led"}
        forms |= {verb + verb[-1] + "ing", verb + verb[-1] + "ed", verb[:-1] + "ing"}
        if verb.endswith("y") and verb[-2] not in "aeiou":  # dolly -> dollies, dollied
            forms |= {verb[:-1] + "ies", verb[:-1] + "ied"}
        if word in forms:
            return verb
    return None


def _parse_clause(words: list[str], text: str) -> Motion:
    speed = 1.0
    rest = []
    for word in words:
        if word in SPEEDS:
            speed *= SPEEDS[word]
        elif word not in _FILLER:
            rest.append(word)
    if not rest:
        raise CameraParseError(f"{text!r}: a clause has no camera verb (e.g. 'pan left', 'push in').")
    verb = _verb_base(rest[0])
    if verb is None:
        raise CameraParseError(f"{text!r}: unknown camera word {rest[0]!r}; known verbs: {sorted(_VERBS)} and move.")
    if len(rest) > 2:
        raise CameraParseError(f"{text!r}: unexpected word {rest[2]!r} after '{rest[0]} {rest[1]}'.")
    direction = rest[1] if len(rest) == 2 else None
    if verb in ("move", "travel"):
        if direction not in _MOVE:
            raise CameraParseError(f"{text!r}: '{rest[0]}' needs a direction among {sorted(_MOVE)}.")
        kind, sign = _MOVE[direction]
        return Motion(kind, sign, speed)
    kind, directions, default = _VERBS[verb]
    if direction is None:
        if default is None:
            raise CameraParseError(f"{text!r}: '{rest[0]}' needs a direction among {sorted(directions)}.")
        return Motion(kind, default, speed)
    if direction not in directions:
        raise CameraParseError(f"{text!r}: '{rest[0]}' takes one of {sorted(directions)}, not {direction!r}.")
    return Motion(kind, directions[direction], speed)


def parse_camera(text: str) -> CameraPlan:
    """Parse a camera description (``"Camera push in, then pan right."``, ``"pan left while tilting up"``,
    ``"fixed"``) into a :class:`CameraPlan`. Raises :class:`CameraParseError` on anything outside the grammar."""
    phrase = text.strip().lower().rstrip(".!").strip()
    phrase = re.sub(r"^(?:the\s+)?camera\b\s*:?", "", phrase).strip()
    if not phrase:
        raise CameraParseError(f"{text!r}: empty camera description; use e.g. 'fixed' or 'pan left'.")
    words = set(re.findall(r"[a-z\-]+", phrase))
    if words & _STATIC:
        if words - _STATIC - _FILLER:
            raise CameraParseError(f"{text!r}: a static camera ('{min(words & _STATIC)}') takes no other motion words.")
        return STATIC
    segments = []
    for part in _SEQUENTIAL.split(phrase):
        clauses = [re.findall(r"[a-z\-]+", c) for c in _SIMULTANEOUS.split(part)]
        clauses = [c for c in clauses if c]
        if not clauses:
            continue
        motions = tuple(_parse_clause(c, text) for c in clauses)
        kinds = [m.kind for m in motions]
        if len(set(kinds)) < len(kinds):
            raise CameraParseError(f"{text!r}: one segment moves the same way twice ({kinds}); use 'then' between.")
        segments.append(motions)
    if not segments:
        raise CameraParseError(f"{text!r}: no camera motion found.")
    return CameraPlan(tuple(segments))


_CAMERA_SENTENCE = re.compile(r"(?:^|[.!?\n]\s*)((?:the\s+)?camera\b[^.!?\n]*)", re.IGNORECASE)


def plan_for_prompt(prompt: str, camera: str | None = None) -> CameraPlan:
    """The camera plan of one sample: ``camera`` (an explicit JSONL field) if given, which must parse (raises
    :class:`CameraParseError`); otherwise the first sentence of ``prompt`` that starts with "Camera"/"The camera".
    A prompt with no such sentence, or one outside the grammar, gives :data:`STATIC` (logged at debug level)."""
    if camera is not None:
        return parse_camera(camera)
    match = _CAMERA_SENTENCE.search(prompt)
    if match is None:
        return STATIC
    try:
        return parse_camera(match.group(1))
    except CameraParseError as error:
        log.debug("camera sentence not understood, assuming a static camera: %s", error)
        return STATIC
