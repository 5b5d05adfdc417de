"""Corpus readers: parse each corpus's folder layout and file names into utterance rows.

Every reader returns a list of :class:`Utterance` rows (path, canonical label, speaker,
gender where known, corpus, spoken text/word where known). The naming conventions come
from the corpora's own documentation; ``../shared/data/README.md`` repeats them:

- TESS (Dupuis & Pichora-Fuller, 2010): ``<OAF|YAF>_<word>_<emotion>``; ``ps`` is
  pleasant surprise. Circulating copies have folder-name variants and one ``OA_`` prefix.
- RAVDESS (Livingstone & Russo, 2018): seven dash-separated codes
  ``modality-channel-emotion-intensity-statement-repetition-actor``; odd actors are male.
- SAVEE (Haq & Jackson): ``<speaker>_<code><nn>`` (Kaggle's flat ``ALL`` layout) or
  ``<speaker>/<code><nn>`` (per-speaker folders).
- CREMA-D (Cao et al., 2014): ``<actor>_<sentence>_<emotion>_<level>``; gender from
  ``VideoDemographics.csv`` when it lies beside ``AudioWAV/``.
- EmoDB (Burkhardt et al., 2005): ``<speaker:2><text:3><emotion letter><version>``.
- ASED v1 (Retta et al., 2022): ``<nn><Emotion>/<code>-<sentence>-<rep>-<gender>-<speaker>``.
- nEMO (Christop, 2024): ``samples/<speaker>_<emotion>_<n>`` plus ``data.tsv``.
- TurEV-DB (Canpolat et al., 2020): ``<Emotion>/<speaker>_<code>_<word>``.
- EMOVO (Costantini et al., 2014): ``<speaker>/<emotion>-<speaker>-<sentence>``.
- URDU (Latif et al., 2018): ``<Emotion>/<speaker>_<file>_<id>``.
- Any other corpus: a CSV manifest with columns ``path,label[,speaker][,gender]``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import soundfile as sf

from ser_lightning.errors import ConfigError, CorpusNotFoundError, UnknownLabelError
from ser_lightning.labels import EMOTIONS


@dataclass(frozen=True)
class Utterance:
    """One recording of a corpus.

    Attributes:
        path: absolute path of the audio file.
        label: canonical emotion name (see :mod:`ser_lightning.labels`).
        speaker: speaker id, prefixed by the corpus name (``ravdess:12``) so that ids
            never collide when corpora are combined.
        corpus: corpus name (``tess``, ``ravdess``, ...).
        gender: ``"female"``, ``"male"`` or ``None`` when unknown.
        text: the sentence or word code when the corpus names it, else ``None``.
    """

    path: str
    label: str
    speaker: str
    corpus: str
    gender: str | None = None
    text: str | None = None

    def as_row(self) -> dict[str, str]:
        """The utterance as a CSV row (``None`` becomes an empty string)."""
        return {k: ("" if v is None else str(v)) for k, v in asdict(self).items()}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> "Utterance":
        """Inverse of :meth:`as_row`."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: (v if v != "" else None) for k, v in row.items() if k in names})


def audio_extensions() -> frozenset[str]:
    """File extensions (lower case, with dot) of every format libsndfile can read here."""
    exts = {"." + fmt.lower() for fmt in sf.available_formats()}
    # libsndfile names formats, not extensions: add the common aliases.
    exts |= {".aif", ".aifc", ".oga", ".opus", ".snd", ".sph", ".wv"}
    return frozenset(exts)


def list_audio_files(root: Path) -> list[Path]:
    """All audio files below ``root`` (recursive, sorted, hidden files skipped)."""
    exts = audio_extensions()
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")
    )


def _require_files(root: Path, corpus: str, layout: str) -> list[Path]:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusNotFoundError(
            f"{corpus}: data root {root} does not exist. Expected layout: {layout}. "
            "Set SER_DATA_DIR (or paths.data_dir=...) to the folder holding the corpora, "
            f"or data.root=... to this corpus's folder."
        )
    files = list_audio_files(root)
    if not files:
        raise CorpusNotFoundError(
            f"{corpus}: no audio files found under {root}. Expected layout: {layout}."
        )
    return files


# --- TESS -------------------------------------------------------------------------
TESS_LAYOUT = "tess/<OAF|YAF>_<emotion>/<OAF|YAF>_<word>_<emotion>.wav (any libsndfile format)"
_TESS_EMOTIONS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "ps": "surprise",
    "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
}


def read_tess(root: str | Path) -> list[Utterance]:
    """Read TESS: 2 female speakers (OAF aged 64, YAF aged 26), 7 emotions.

    The emotion is the last ``_`` part of the file name; ``ps`` (pleasant surprise) maps
    to ``surprise``. The ``OA_`` speaker prefix found in circulating copies is read as
    ``OAF``; folder names (``OAF_Fear``, ``YAF_pleasant_surprised``) are not trusted.

    Raises:
        CorpusNotFoundError: ``root`` is missing or holds no audio.
        UnknownLabelError: a file name ends in an unknown emotion code.
    """
    rows = []
    for path in _require_files(Path(root), "tess", TESS_LAYOUT):
        parts = path.stem.split("_")
        if len(parts) < 3:
            raise UnknownLabelError(f"tess: cannot parse file name {path} (expected {TESS_LAYOUT})")
        speaker = parts[0].upper()
        speaker = {"OA": "OAF", "YA": "YAF"}.get(speaker, speaker)
        code = "_".join(parts[2:]).lower()
        if code not in _TESS_EMOTIONS:
            raise UnknownLabelError(
                f"tess: unknown emotion '{code}' in file name {path}; "
                f"known: {sorted(_TESS_EMOTIONS)}"
            )
        rows.append(
            Utterance(str(path), _TESS_EMOTIONS[code], f"tess:{speaker}", "tess", "female", parts[1])
        )
    return rows


# --- RAVDESS ----------------------------------------------------------------------
RAVDESS_LAYOUT = "ravdess/Actor_<nn>/<mm>-<vc>-<em>-<in>-<st>-<rp>-<actor>.wav"
_RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def read_ravdess(root: str | Path) -> list[Utterance]:
    """Read the speech part of RAVDESS: 24 actors (odd male, even female), 8 emotions.

    Song files (vocal channel ``02``) are left out. The statement code (``01`` "Kids are
    talking by the door", ``02`` "Dogs are sitting by the door") goes into ``text``.

    Raises:
        CorpusNotFoundError: ``root`` is missing or holds no audio.
        UnknownLabelError: a name is not seven codes or has an unknown emotion code.
    """
    rows = []
    for path in _require_files(Path(root), "ravdess", RAVDESS_LAYOUT):
        m = _RAVDESS_NAME.match(path.stem)
        if not m:
            raise UnknownLabelError(f"ravdess: cannot parse file name {path} (expected {RAVDESS_LAYOUT})")
        _modality, channel, emotion, _intensity, statement, _rep, actor = m.groups()
        if channel != "01":  # 02 = song
            continue
        if emotion not in _RAVDESS_EMOTIONS:
            raise UnknownLabelError(f"ravdess: unknown emotion code '{emotion}' in {path}")
        gender = "male" if int(actor) % 2 else "female"
        rows.append(
            Utterance(str(path), _RAVDESS_EMOTIONS[emotion], f"ravdess:{actor}", "ravdess", gender, statement)
        )
    if not rows:
        raise CorpusNotFoundError(f"ravdess: no speech files (vocal channel 01) under {root}")
    return rows


# --- SAVEE ------------------------------------------------------------------------
SAVEE_LAYOUT = "savee/ALL/<DC|JE|JK|KL>_<code><nn>.wav or savee/<speaker>/<code><nn>.wav"
_SAVEE_EMOTIONS = {
    "a": "angry",
    "d": "disgust",
    "f": "fear",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprise",
}
_SAVEE_NAME = re.compile(r"^(?:([A-Za-z]{2})_)?([a-z]{1,2})(\d+)$")


def read_savee(root: str | Path) -> list[Utterance]:
    """Read SAVEE: 4 male speakers (DC, JE, JK, KL), 7 emotions.

    Accepts Kaggle's flat ``ALL`` layout (speaker in the file name) and the original
    per-speaker folders (speaker from the parent folder).

    Raises:
        CorpusNotFoundError: ``root`` is missing or holds no audio.
        UnknownLabelError: a name does not parse or has an unknown emotion code.
    """
    rows = []
    for path in _require_files(Path(root), "savee", SAVEE_LAYOUT):
        m = _SAVEE_NAME.match(path.stem)
        if not m or m.group(2) not in _SAVEE_EMOTIONS:
            raise UnknownLabelError(
                f"savee: cannot read emotion from file name {path}; expected {SAVEE_LAYOUT} "
                f"with code in {sorted(_SAVEE_EMOTIONS)}"
            )
        speaker = (m.group(1) or path.parent.name).upper()
        rows.append(
            Utterance(str(path), _SAVEE_EMOTIONS[m.group(2)], f"savee:{speaker}", "savee", "male", m.group(3))
        )
    return rows


# --- CREMA-D ----------------------------------------------------------------------
CREMA_D_LAYOUT = "crema_d/AudioWAV/<actor>_<sentence>_<ANG|DIS|FEA|HAP|NEU|SAD>_<level>.wav"
_CREMA_D_EMOTIONS = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
_CREMA_D_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def _crema_d_genders(root: Path) -> dict[str, str]:
    """Actor -> gender from CREMA-D's ``VideoDemographics.csv``, when present."""
    for candidate in (root / "VideoDemographics.csv", root.parent / "VideoDemographics.csv"):
        if candidate.is_file():
            with candidate.open(newline="") as fh:
                return {
                    r["ActorID"].strip(): r["Sex"].strip().lower()
                    for r in csv.DictReader(fh)
                    if r.get("ActorID") and r.get("Sex")
                }
    return {}


def read_crema_d(root: str | Path) -> list[Utterance]:
    """Read CREMA-D: 91 actors, 6 emotions, 12 sentences.

    Gender is read from ``VideoDemographics.csv`` (shipped with CREMA-D) when it lies
    in or beside ``root``; otherwise it is ``None``.

    Raises:
        CorpusNotFoundError: ``root`` is missing or holds no audio.
        UnknownLabelError: a name does not parse or has an unknown emotion code.
    """
    root = Path(root)
    files = _require_files(root, "crema_d", CREMA_D_LAYOUT)
    genders = _crema_d_genders(root)
    rows = []
    for path in files:
        m = _CREMA_D_NAME.match(path.stem)
        if not m or m.group(3) not in _CREMA_D_EMOTIONS:
            raise UnknownLabelError(f"crema_d: cannot read emotion from file name {path}; expected {CREMA_D_LAYOUT}")
        actor, sentence, emotion, _level = m.groups()
        rows.append(
            Utterance(str(path), _CREMA_D_EMOTIONS[emotion], f"crema_d:{actor}", "crema_d", genders.get(actor), sentence)
        )
    return rows


# --- EmoDB ------------------------------------------------------------------------
EMODB_LAYOUT = "emodb/wav/<speaker:2><text:3><emotion letter><version>.wav, e.g. 03a01Fa.wav"
_EMODB_EMOTIONS = {
    "W": "angry",  # Wut
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fear",  # Angst
    "F": "happy",  # Freude
    "T": "sad",  # Trauer
    "N": "neutral",
}
# Speaker genders from the EmoDB documentation (10 speakers, 5 female, 5 male).
_EMODB_GENDERS = {
    "03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
    "12": "male", "13": "female", "14": "female", "15": "male", "16": "female",
}
_EMODB_NAME = re.compile(r"^(\d\d)([a-z]\d\d)([A-Z])([a-z])$")


def read_emodb(root: str | Path) -> list[Utterance]:
    """Read EmoDB (Berlin Database of Emotional Speech): 10 speakers, 7 emotions.

    Raises:
        CorpusNotFoundError: ``root`` is missing or holds no audio.
        UnknownLabelError: a name does not parse or has an unknown emotion letter.
    """
    rows = []
    for path in _require_files(Path(root), "emodb", EMODB_LAYOUT):
        m = _EMODB_NAME.match(path.stem)
        if not m or m.group(3) not in _EMODB_EMOTIONS:
            raise UnknownLabelError(f"emodb: cannot read emotion from file name {path}; expected {EMODB_LAYOUT}")
        speaker, text, letter, _version = m.groups()
        rows.append(
            Utterance(str(path), _EMODB_EMOTIONS[letter], f"emodb:{speaker}", "emodb", _EMODB_GENDERS.get(speaker), text)
        )
    return rows


# --- ASED (Amharic) ---------------------------------------------------------------
ASED_LAYOUT = "ased/<nn><Emotion>/<code>-<sentence>-<repetition>-<gender>-<speaker>.wav, e.g. 05Angry/a5-07-02-02-65.wav"
_ASED_EMOTIONS = {"n1": "neutral", "f2": "fear", "h3": "happy", "s4": "sad", "a5": "angry"}
_ASED_NAME = re.compile(r"^([A-Za-z]\d)-(\d+)-(\d+)-(0[12])-(\d+)$")
_ASED_GENDERS = {"01": "female", "02": "male"}


def read_ased(root: str | Path) -> list[Utterance]:
    """Read ASED v1, the Amharic Speech Emotion Dataset (Retta et al., ACM TALLIP 2022).

    65 participants (25 female, 40 male) recorded themselves on their own equipment;
    5 emotions. Names are ``<code>-<sentence>-<repetition>-<gender>-<speaker>`` with emotion
    codes n1 neutral, f2 fear(ful), h3 happy, s4 sad, a5 angry (case-insensitive: the
    release has one ``S4``), gender 01 female, 02 male. Five speaker numbers (09, 15, 21,
    23, 25) carry both gender codes, one file each against 11-65 of the other: a speaker's
    gender is the code most of their files carry, which gives the paper's 25 female and
    40 male participants. The sentence and repetition go into ``text`` (``07-02``).

    Raises:
        CorpusNotFoundError: ``root`` is missing or holds no audio.
        UnknownLabelError: a name does not parse or has an unknown emotion or gender code.
    """
    parsed = []
    for path in _require_files(Path(root), "ased", ASED_LAYOUT):
        m = _ASED_NAME.match(path.stem)
        code = m.group(1).lower() if m else ""
        if not m or code not in _ASED_EMOTIONS:
            raise UnknownLabelError(
                f"ased: cannot read emotion from file name {path}; expected {ASED_LAYOUT} "
                f"with code in {sorted(_ASED_EMOTIONS)}"
            )
        parsed.append((path, code, m.group(2), m.group(3), m.group(4), m.group(5)))
    votes: dict[str, Counter] = defaultdict(Counter)
    for _path, _code, _sentence, _rep, gender, speaker in parsed:
        votes[speaker][gender] += 1
    # ties (not in the release) go to the lower code, so the result never depends on file order
    gender_of = {spk: _ASED_GENDERS[min(c, key=lambda g: (-c[g], g))] for spk, c in votes.items()}
    return [
        Utterance(str(path), _ASED_EMOTIONS[code], f"ased:{speaker}", "ased", gender_of[speaker], f"{sentence}-{rep}")
        for path, code, sentence, rep, _gender, speaker in parsed
    ]


# --- nEMO (Polish) ----------------------------------------------------------------
NEMO_LAYOUT = "nemo/samples/<speaker>_<emotion>_<n>.wav (+ nemo/data.tsv), e.g. samples/EB0_anger_1.wav"
_NEMO_EMOTIONS = {
    "anger": "angry",
    "fear": "fear",
    "happiness": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "surprised": "surprise",
}
# From the nEMO README/data.tsv: 4 female and 5 male speakers.
_NEMO_GENDERS = {
    "EB0": "female", "IC0": "female", "KD0": "female", "MK0": "female",
    "KS0": "male", "MP0": "male", "SM0": "male", "TP0": "male", "WR0": "male",
}
_NEMO_NAME = re.compile(r"^([A-Za-z]+\d*)_([a-z]+)_(\d+)$")


def _nemo_table(root: Path) -> dict[str, dict[str, str]]:
    """``data.tsv`` of nEMO (in or above ``root``) as file stem -> row, stripped of the
    leading spaces its ``speaker_id`` column has; empty when there is none."""
    for candidate in (root / "data.tsv", root.parent / "data.tsv"):
        if candidate.is_file():
            with candidate.open(newline="", encoding="utf-8") as fh:
                return {
                    Path(r["file_id"].strip()).stem: {k: (v or "").strip() for k, v in r.items() if k}
                    for r in csv.DictReader(fh, delimiter="\t")
                    if r.get("file_id")
                }
    return {}


def read_nemo(root: str | Path) -> list[Utterance]:
    """Read nEMO, Polish emotional speech (Christop, LREC-COLING 2024): 9 actors, 6 emotions.

    Names are ``<speaker>_<emotion>_<n>`` with emotions anger, fear, happiness, neutral,
    sadness, surprised (mapped to angry, fear, happy, neutral, sad, surprise). When the
    release's ``data.tsv`` lies in ``root`` (or above it), its speaker_id (leading spaces
    stripped), gender and normalised transcription are used and must agree with the file
    name; otherwise the gender comes from the corpus documentation (EB0, IC0, KD0, MK0
    female; KS0, MP0, SM0, TP0, WR0 male).

    Raises:
        CorpusNotFoundError: ``root`` is missing or holds no audio.
        UnknownLabelError: a name does not parse, has an unknown emotion, or disagrees
            with ``data.tsv`` on the speaker or the emotion.
    """
    root = Path(root)
    files = _require_files(root, "nemo", NEMO_LAYOUT)
    table = _nemo_table(root)
    rows = []
    for path in files:
        m = _NEMO_NAME.match(path.stem)
        if not m or m.group(2) not in _NEMO_EMOTIONS:
            raise UnknownLabelError(
                f"nemo: cannot read emotion from file name {path}; expected {NEMO_LAYOUT} "
                f"with emotion in {sorted(_NEMO_EMOTIONS)}"
            )
        speaker, emotion = m.group(1), m.group(2)
        info = table.get(path.stem, {})
        if info and (info.get("speaker_id", speaker) != speaker or info.get("emotion", emotion) != emotion):
            raise UnknownLabelError(
                f"nemo: data.tsv says speaker '{info.get('speaker_id')}', emotion '{info.get('emotion')}' for {path}, "
                f"its name says '{speaker}', '{emotion}'"
            )
        gender = (info.get("gender") or "").lower() or _NEMO_GENDERS.get(speaker)
        rows.append(
            Utterance(str(path), _NEMO_EMOTIONS[emotion], f"nemo:{speaker}", "nemo", gender,
                      info.get("normalized_text") or None)
        )
    return rows


# --- TurEV-DB (Turkish) -----------------------------------------------------------
TUREV_LAYOUT = "turev/<Angry|Calm|Happy|Sad>/<speaker>_<kz|sk|mt|hl>_<word>.wav, e.g. Angry/1157_kz_beste.wav"
_TUREV_EMOTIONS = {"kz": "angry", "sk": "calm", "mt": "happy", "hl": "sad"}
_TUREV_NAME = re.compile(r"^(\d+)_([a-z]{2})_(.+)$")


def read_turev(root: str | Path) -> list[Utterance]:
    """Read TurEV-DB, the Turkish Emotion-Voice Database (Canpolat, Ormanoglu & Zeyrek,
    SLTU-CCURL 2020): 6 actors, single words (about 1 s), 4 emotions.

    Emotion codes (Turkish): kz (kızgın) angry, sk (sakin) calm, mt (mutlu) happy,
    hl (hüzünlü) sad. ``calm`` stays ``calm``, the class RAVDESS's calm maps to, so
    ``data=combined``'s calm policy treats both corpora alike. The release gives no
    speaker genders, so ``gender`` is ``None``. Speaker 1157 recorded only angry and sad.
    The word goes into ``text``.

    Raises:
        CorpusNotFoundError: ``root`` is missing or holds no audio.
        UnknownLabelError: a name does not parse or has an unknown emotion code.
    """
    rows = []
    for path in _require_files(Path(root), "turev", TUREV_LAYOUT):
        m = _TUREV_NAME.match(path.stem)
        if not m or m.group(2) not in _TUREV_EMOTIONS:
            raise UnknownLabelError(
                f"turev: cannot read emotion from file name {path}; expected {TUREV_LAYOUT} "
                f"with code in {sorted(_TUREV_EMOTIONS)}"
            )
        speaker, code, word = m.groups()
        rows.append(Utterance(str(path), _TUREV_EMOTIONS[code], f"turev:{speaker}", "turev", None, word))
    return rows


# --- EMOVO (Italian) --------------------------------------------------------------
EMOVO_LAYOUT = "emovo/<f1..f3|m1..m3>/<emotion>-<speaker>-<sentence>.wav, e.g. f1/dis-f1-b1.wav"
_EMOVO_EMOTIONS = {
    "dis": "disgust",  # disgusto
    "gio": "happy",  # gioia
    "neu": "neutral",
    "pau": "fear",  # paura
    "rab": "angry",  # rabbia
    "sor": "surprise",  # sorpresa
    "tri": "sad",  # tristezza
}
_EMOVO_NAME = re.compile(r"^([a-z]{3})-([fm]\d+)-([a-z]+\d*)$")


def read_emovo(root: str | Path) -> list[Utterance]:
    """Read EMOVO, Italian emotional speech (Costantini et al., LREC 2014): 6 actors
    (f1-f3 female, m1-m3 male), 14 sentences, 7 emotions, 588 files.

    Names are ``<emotion>-<speaker>-<sentence>``: dis disgust, gio (gioia) happy, neu
    neutral, pau (paura) fear, rab (rabbia) angry, sor (sorpresa) surprise, tri
    (tristezza) sad. The gender is the speaker's first letter; the sentence goes into
    ``text``. Names are matched case-insensitively.

    Raises:
        CorpusNotFoundError: ``root`` is missing or holds no audio.
        UnknownLabelError: a name does not parse or has an unknown emotion code.
    """
    rows = []
    for path in _require_files(Path(root), "emovo", EMOVO_LAYOUT):
        m = _EMOVO_NAME.match(path.stem.lower())
        if not m or m.group(1) not in _EMOVO_EMOTIONS:
            raise UnknownLabelError(
                f"emovo: cannot read emotion from file name {path}; expected {EMOVO_LAYOUT} "
                f"with emotion in {sorted(_EMOVO_EMOTIONS)}"
            )
        code, speaker, sentence = m.groups()
        gender = "female" if speaker.startswith("f") else "male"
        rows.append(Utterance(str(path), _EMOVO_EMOTIONS[code], f"emovo:{speaker}", "emovo", gender, sentence))
    return rows


# --- URDU -------------------------------------------------------------------------
URDU_LAYOUT = "urdu/<Angry|Happy|Neutral|Sad>/<speaker>_<file>_<id>.wav, e.g. Angry/SM1_F10_A010.wav"
_URDU_EMOTIONS = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad"}
_URDU_SPEAKER = re.compile(r"^S([MF])\d+$", re.IGNORECASE)


def read_urdu(root: str | Path) -> list[Utterance]:
    """Read URDU (Latif et al., 2018, "Cross lingual speech emotion recognition: Urdu vs.
    Western languages"): 400 utterances of natural speech from Urdu TV talk shows,
    4 emotions (the folder: Angry, Happy, Neutral, Sad).

    The speaker is the part of the name before the first ``_`` (``SM1``, ``SF6``); its
    second letter is the gender (M male, F female).

    Raises:
        CorpusNotFoundError: ``root`` is missing or holds no audio.
        UnknownLabelError: the folder is not an emotion or the speaker is not ``S<M|F><n>``.
    """
    rows = []
    for path in _require_files(Path(root), "urdu", URDU_LAYOUT):
        emotion = path.parent.name.lower()
        speaker = path.stem.split("_", 1)[0]
        m = _URDU_SPEAKER.match(speaker)
        if emotion not in _URDU_EMOTIONS or not m or "_" not in path.stem:
            raise UnknownLabelError(
                f"urdu: cannot read emotion (folder) and speaker (name) of {path}; expected {URDU_LAYOUT} "
                f"with folder in {sorted(e.capitalize() for e in _URDU_EMOTIONS)}"
            )
        gender = "male" if m.group(1).upper() == "M" else "female"
        rows.append(Utterance(str(path), _URDU_EMOTIONS[emotion], f"urdu:{speaker.upper()}", "urdu", gender, None))
    return rows


# --- generic manifest -------------------------------------------------------------
MANIFEST_LAYOUT = "a CSV file with a header: path,label[,speaker][,gender] (paths relative to the CSV)"
#: Common spellings of the canonical emotions, accepted in manifests.
LABEL_ALIASES = {
    "anger": "angry", "ang": "angry", "happiness": "happy", "joy": "happy", "hap": "happy",
    "sadness": "sad", "fearful": "fear", "fea": "fear", "disgusted": "disgust", "dis": "disgust",
    "surprised": "surprise", "ps": "surprise", "pleasant_surprise": "surprise", "neu": "neutral",
    "bored": "boredom",
}


def normalize_label(raw: str, extra_labels: Iterable[str] = ()) -> str | None:
    """Map a label spelling to its canonical name, or ``None`` when unknown."""
    label = raw.strip().lower().replace(" ", "_")
    label = LABEL_ALIASES.get(label, label)
    return label if label in EMOTIONS or label in set(extra_labels) else None


def read_manifest(manifest: str | Path, extra_labels: Iterable[str] = (), corpus: str = "manifest") -> list[Utterance]:
    """Read a CSV manifest ``path,label[,speaker][,gender]`` for any other corpus.

    Relative paths are taken relative to the manifest's folder. Labels may be canonical
    names or common spellings (:data:`LABEL_ALIASES`); ``extra_labels`` admits names
    outside the canonical set. A missing speaker column makes every file its own
    speaker (so only random splits make sense).

    Raises:
        CorpusNotFoundError: the manifest does not exist or lists no rows.
        UnknownLabelError: a row's label is not known (the row's file is named).
        ValueError: the header lacks ``path`` or ``label``.
    """
    manifest = Path(manifest).expanduser()
    if not manifest.is_file():
        raise CorpusNotFoundError(f"{corpus}: manifest {manifest} does not exist. Expected {MANIFEST_LAYOUT}.")
    extra = tuple(extra_labels)
    rows = []
    with manifest.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "label"}.difference(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{corpus}: manifest {manifest} lacks column(s) {sorted(missing)}; expected {MANIFEST_LAYOUT}")
        for line, r in enumerate(reader, start=2):
            path = Path(r["path"]).expanduser()
            path = path if path.is_absolute() else (manifest.parent / path)
            label = normalize_label(r["label"], extra)
            if label is None:
                raise UnknownLabelError(
                    f"{corpus}: unknown label '{r['label']}' for {path} ({manifest}, line {line}); "
                    f"known: {list(EMOTIONS)} (add others with data.extra_labels)"
                )
            speaker = (r.get("speaker") or "").strip() or path.stem
            gender = (r.get("gender") or "").strip().lower() or None
            rows.append(Utterance(str(path.resolve()), label, f"{corpus}:{speaker}", corpus, gender, None))
    if not rows:
        raise CorpusNotFoundError(f"{corpus}: manifest {manifest} lists no files")
    return rows


# --- several corpora at once ------------------------------------------------------
#: Folder of each corpus below the data root (as in docs/DATA.md, "Where the data is").
DEFAULT_CORPUS_FOLDERS = {
    "tess": "tess",
    "ravdess": "ravdess",
    "savee": "savee",
    "crema_d": "crema_d/AudioWAV",
    "emodb": "emodb/wav",
    "ased": "ased",
    "nemo": "nemo",
    "turev": "turev",
    "emovo": "emovo",
    "urdu": "urdu",
}
CALM_POLICIES = ("drop", "neutral", "keep")


def present_corpora(root: str | Path, roots: dict[str, str] | None = None) -> list[str]:
    """The corpora of :data:`DEFAULT_CORPUS_FOLDERS` whose folder below ``root`` exists
    and holds at least one audio file, in that table's order (what ``data=combined``
    reads when ``data.reader_args.corpora`` is null).

    Args:
        root: the data root holding one folder per corpus.
        roots: per-corpus folder overrides (absolute, or relative to ``root``).
    """
    folders = {**DEFAULT_CORPUS_FOLDERS, **(roots or {})}
    exts = audio_extensions()
    found = []
    for corpus, folder in folders.items():
        path = Path(root).expanduser() / folder
        if path.is_dir() and any(p.is_file() and p.suffix.lower() in exts for p in path.rglob("*")):
            found.append(corpus)
    return found


def read_combined(
    root: str | Path,
    corpora: Iterable[str] | None = None,
    roots: dict[str, str] | None = None,
    calm: str = "drop",
    drop_labels: Iterable[str] = (),
) -> list[Utterance]:
    """Read several corpora into one list on the shared emotion set (``data=combined``).

    Mapping onto one emotion set (see :mod:`ser_lightning.labels`): every reader already
    maps its codes to canonical names, so TESS "pleasant surprise", RAVDESS "surprised"
    and SAVEE "surprise" are all ``surprise``; the label set of the result is the union
    of the corpora's. ``calm`` (RAVDESS, TurEV-DB) has no counterpart in the other corpora;
    ``calm`` chooses what happens to it: ``"drop"`` (calm files are left out),
    ``"neutral"`` (relabelled neutral, as low-arousal neutral speech) or ``"keep"`` (a
    class of its own). Labels in ``drop_labels`` are left out too. Speaker ids keep their
    ``corpus:`` prefix, so speakers never collide.

    Args:
        root: the data root holding one folder per corpus.
        corpora: reader names to combine; ``None`` (default): every corpus present under
            ``root`` (:func:`present_corpora`).
        roots: per-corpus folder overrides (absolute, or relative to ``root``);
            default :data:`DEFAULT_CORPUS_FOLDERS`.
        calm: ``drop`` | ``neutral`` | ``keep``.
        drop_labels: further canonical labels to leave out.

    Raises:
        ConfigError (a ValueError): unknown corpus or calm policy, an empty list, or
            ``corpora=None`` with no known corpus folder under ``root``.
        CorpusNotFoundError, UnknownLabelError: from a corpus reader.
    """
    if corpora is None:
        corpora = present_corpora(root, roots)
        if not corpora:
            raise CorpusNotFoundError(
                f"data=combined: no corpus folder under {root} holds audio; looked for "
                f"{', '.join(f'{c} ({f})' for c, f in {**DEFAULT_CORPUS_FOLDERS, **(roots or {})}.items())}. "
                "Set SER_DATA_DIR (or paths.data_dir=...) or name them in data.reader_args.corpora."
            )
    corpora = list(corpora)
    if not corpora:
        raise ConfigError("data.reader_args.corpora is empty: name at least one corpus (or null: every corpus present)")
    if calm not in CALM_POLICIES:
        raise ConfigError(f"data.reader_args.calm='{calm}' is not allowed; use one of {list(CALM_POLICIES)}")
    unknown = [c for c in corpora if c not in DEFAULT_CORPUS_FOLDERS]
    if unknown:
        raise ConfigError(f"data.reader_args.corpora: {unknown} cannot be combined; allowed: {sorted(DEFAULT_CORPUS_FOLDERS)}")
    folders = {**DEFAULT_CORPUS_FOLDERS, **(roots or {})}
    dropped = set(drop_labels) | ({"calm"} if calm == "drop" else set())
    rows = []
    for corpus in corpora:
        for r in READERS[corpus](Path(root) / folders[corpus]):
            if r.label in dropped:
                continue
            if r.label == "calm" and calm == "neutral":
                r = Utterance(r.path, "neutral", r.speaker, r.corpus, r.gender, r.text)
            rows.append(r)
    return rows


READERS: dict[str, Callable[..., list[Utterance]]] = {
    "tess": read_tess,
    "ravdess": read_ravdess,
    "savee": read_savee,
    "crema_d": read_crema_d,
    "emodb": read_emodb,
    "ased": read_ased,
    "nemo": read_nemo,
    "turev": read_turev,
    "emovo": read_emovo,
    "urdu": read_urdu,
    "manifest": read_manifest,
    "combined": read_combined,
}


def read_corpus(name: str, root: str | Path, **kwargs) -> list[Utterance]:
    """Read corpus ``name`` (a key of :data:`READERS`) from ``root``.

    Raises:
        ValueError: unknown corpus name (the allowed names are listed).
        CorpusNotFoundError, UnknownLabelError: from the reader.
    """
    if name not in READERS:
        raise ConfigError(f"unknown corpus '{name}'; allowed: {sorted(READERS)}")
    return READERS[name](root, **kwargs)


def write_manifest(rows: Iterable[Utterance], path: str | Path) -> None:
    """Write utterance rows as CSV (the columns of :class:`Utterance`)."""
    names = [f.name for f in fields(Utterance)]
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow(row.as_row())


def load_manifest_rows(path: str | Path) -> list[Utterance]:
    """Read a manifest written by :func:`write_manifest` (all columns, no label mapping)."""
    with Path(path).open(newline="") as fh:
        return [Utterance.from_row(r) for r in csv.DictReader(fh)]
