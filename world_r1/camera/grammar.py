"""A small grammar of camera motions, parsed from a prompt's camera sentence or an explicit ``camera`` string.

World-R1's release understands nine phrases, found anywhere in the lower-cased prompt as whole words, every
occurrence, in order of position: "push in", "pull out", "move left", "move right", "orbit left", "orbit right",
"pan left", "pan right" and "fixed" (``"Camera move left, pull out, then pan left."`` is three movements;
``"A tower at dusk, camera push in."`` is one; a prompt with none has no camera). This grammar reads those prompts
exactly so, and is a superset of them for the project's richer words:

    plan     := static | segment (SEQ segment)*
    segment  := static | clause (SIM clause)*     # clauses of one segment run at the same time; static: a hold
    clause   := speed* verb speed* direction? speed*
    static   := "fixed" | "static" | "still" | "stationary" | "locked (off)" | "motionless" | "steady"
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
    orbit, arc, circle           -> orbit  right | left        (travel around a point, turning)
    zoom                         -> zoom   in | out                   (the focal length grows / shrinks; no travel)
    move, travel                 -> forward/in/back/out: dolly, left/right: truck, up/down: crane

How far and which way each kind moves is :mod:`world_r1.camera.trajectory`'s: under the release's convention "orbit
left" turns left and travels right, as World-R1's camera does. A zoom changes the lens, not the pose: the image scales
about its centre with no parallax, where a dolly travels and near things grow faster than far ones (``"dolly in while
zooming out"`` is the vertigo shot).

Where the two readings could differ, the release's wins, so a World-R1 prompt means here what it meant to World-R1:
a camera description made only of the nine phrases joined by commas, "then" and "and" is read as the release reads it
(each phrase a movement of its own, in order: ``"orbit left and push in"`` is two movements, not one); any other is
read by the grammar. :func:`parse_camera` is strict and raises :class:`CameraParseError` naming the unknown word;
:func:`plan_for_prompt` is what rollouts and rewards use (see there).
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
_FILLER |= {"hold", "stay", "remain"}
_SEQUENTIAL = re.compile(r",|;|\band then\b|\bthen\b|\bfollowed by\b|\bafter that\b|\bafterwards\b")
_SIMULTANEOUS = re.compile(r"\b(?:and|while|whilst|as|with)\b")


#: what each motion kind does to the camera, positive direction first (OpenCV axes; :mod:`world_r1.camera.trajectory`)
MEANINGS: dict[str, str] = {
    "pan": "turns about the vertical axis; right: the view swings right",
    "tilt": "turns about the camera's x axis; up: the view swings up",
    "dolly": "travels along its heading; in: towards the scene (near things grow faster than far ones)",
    "truck": "travels sideways; right: to its right, the scene slides left",
    "crane": "travels vertically; up: the scene slides down",
    "orbit": "turns toward its word, travels the other way on a circle (the release's); left: turns left, moves right",
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
    """Movements played one after another; the motions of one movement (a segment) run together, and an empty
    segment is a hold ("fixed"). No segments at all means the prompt gives no camera: the release then neither warps
    the noise nor scores a trajectory, where a hold asks for a still camera."""

    segments: tuple[tuple[Motion, ...], ...] = ()

    @property
    def has_camera(self) -> bool:
        """Whether the prompt names a camera at all (a hold counts: "Camera fixed." asks for a still camera)."""
        return bool(self.segments)

    @property
    def is_static(self) -> bool:
        """Whether the camera never moves: no camera given, or only holds."""
        return not any(self.segments)

    def mirrored(self) -> CameraPlan:
        """The same plan with every direction reversed (pan right -> pan left, dolly in -> dolly out)."""
        return CameraPlan(tuple(tuple(Motion(m.kind, -m.sign, m.speed) for m in segment) for segment in self.segments))

    def describe(self) -> str:
        """Canonical text, e.g. ``"dolly in, then pan right"``, that :func:`parse_camera` maps back to this plan
        when every speed is 0.5, 1 or 2 (other speeds, from repeated speed words, are written as ``x0.25``); "none"
        when the plan has no camera."""
        if not self.has_camera:
            return "none"
        return ", then ".join(" and ".join(m.describe() for m in segment) or "fixed" for segment in self.segments)


STATIC = CameraPlan()  # no camera given: nothing warped, a still camera expected by the project's own rewards
FIXED = CameraPlan(((),))  # "Camera fixed.": one hold

#: World-R1's nine camera phrases, as its release finds them in prompts, with the movement each is here.
RELEASE_PHRASES: dict[str, tuple[Motion, ...]] = {
    "push in": (Motion("dolly", 1),),
    "pull out": (Motion("dolly", -1),),
    "move left": (Motion("truck", -1),),
    "move right": (Motion("truck", 1),),
    "orbit left": (Motion("orbit", -1),),
    "orbit right": (Motion("orbit", 1),),
    "pan left": (Motion("pan", -1),),
    "pan right": (Motion("pan", 1),),
    "fixed": (),
}
_RELEASE_PATTERN = re.compile(
    r"(?<![a-z])(" + "|".join(re.escape(p) for p in sorted(RELEASE_PHRASES, key=len, reverse=True)) + r")(?![a-z])"
)
# a description the release reads whole: its phrases, and nothing between them but commas, "then" and "and"
_JOINERS = re.compile(r"^(?:[\s,;]|\band\b|\bthen\b)*$")


def release_phrases(text: str) -> list[tuple[int, str]]:
    """Every one of the release's nine phrases in ``text`` (case-insensitive, whole words), as ``(position, phrase)``
    in order of position: what World-R1's release reads as the camera plan of a prompt."""
    return [(m.start(), m.group(1)) for m in _RELEASE_PATTERN.finditer(text.lower())]


def _release_reading(phrase: str) -> CameraPlan | None:
    """The release's plan of a camera description made only of its phrases joined by commas, "then" and "and"
    (None for any other description): each phrase a movement of its own, in order."""
    found = [(m.start(), m.end(), m.group(1)) for m in _RELEASE_PATTERN.finditer(phrase)]
    if not found:
        return None
    bounds = [0, *(edge for start, end, _ in found for edge in (start, end)), len(phrase)]
    gaps = [phrase[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2)]
    if not all(_JOINERS.match(gap) for gap in gaps):
        return None
    return CameraPlan(tuple(RELEASE_PHRASES[name] for _, _, name in found))


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


def _parse_segment(part: str, text: str) -> tuple[Motion, ...] | None:
    """One segment of a chain: its simultaneous motions, ``()`` for a hold, None when it holds no words."""
    words = set(re.findall(r"[a-z\-]+", part))
    if not words - _FILLER:
        return None
    if words & _STATIC:
        if words - _STATIC - _FILLER:
            raise CameraParseError(
                f"{text!r}: a static camera ('{min(words & _STATIC)}') takes no other motion words in its segment; "
                "use 'then' between a hold and a motion."
            )
        return ()
    clauses = [c for c in (re.findall(r"[a-z\-]+", c) for c in _SIMULTANEOUS.split(part)) if c]
    motions = tuple(_parse_clause(c, text) for c in clauses)
    kinds = [m.kind for m in motions]
    if len(set(kinds)) < len(kinds):
        raise CameraParseError(f"{text!r}: one segment moves the same way twice ({kinds}); use 'then' between.")
    return motions


def parse_camera(text: str) -> CameraPlan:
    """Parse a camera description (``"Camera push in, then pan right."``, ``"pan left while tilting up"``,
    ``"fixed"``) into a :class:`CameraPlan`. A description made only of the release's nine phrases is read as the
    release reads it. Raises :class:`CameraParseError` on anything outside the grammar."""
    phrase = text.strip().lower().rstrip(".!").strip()
    phrase = re.sub(r"^(?:the\s+)?camera\b\s*:?", "", phrase).strip()
    if not phrase:
        raise CameraParseError(f"{text!r}: empty camera description; use e.g. 'fixed' or 'pan left'.")
    release = _release_reading(phrase)
    if release is not None:
        return release
    segments = [segment for part in _SEQUENTIAL.split(phrase) if (segment := _parse_segment(part, text)) is not None]
    if not segments:
        raise CameraParseError(f"{text!r}: no camera motion found.")
    return CameraPlan(tuple(segments))


_CAMERA_SENTENCE = re.compile(r"(?:^|[.!?\n]\s*)((?:the\s+)?camera\b[^.!?\n]*)", re.IGNORECASE)


def plan_for_prompt(prompt: str, camera: str | None = None) -> CameraPlan:
    """The camera plan of one sample.

    - ``camera`` (an explicit JSONL field), if given, must parse (raises :class:`CameraParseError`).
    - Else the first sentence of ``prompt`` that starts with "Camera"/"The camera", if the grammar parses it, and
      every release phrase elsewhere in the prompt, each a movement placed by its position (the release counts every
      occurrence).
    - Else the release's phrases anywhere in the prompt, in order (``"A tower at dusk, camera push in."``).
    - Else :data:`STATIC`: no camera (a camera sentence outside the grammar is logged at debug level).
    """
    if camera is not None:
        return parse_camera(camera)
    lowered = prompt.lower()  # one string for every position below
    found = release_phrases(lowered)
    match = _CAMERA_SENTENCE.search(lowered)
    if match is not None:
        try:
            sentence = parse_camera(match.group(1))
        except CameraParseError as error:
            log.debug("camera sentence not understood, reading the release's phrases only: %s", error)
        else:
            start, end = match.span(1)
            before = [RELEASE_PHRASES[name] for at, name in found if at < start]
            after = [RELEASE_PHRASES[name] for at, name in found if at >= end]
            return CameraPlan((*before, *sentence.segments, *after))
    return CameraPlan(tuple(RELEASE_PHRASES[name] for _, name in found))
