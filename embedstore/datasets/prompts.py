"""Prompt templates: the sentence each sample's text is rendered from.

A template is a Python format string over *prompt fields*: per-sample values
an adapter has already turned into words, with the paper's fallbacks for
missing data ("No data reported", "no age reported", ...). The template's
name and text are stored with every sample (``prompt_name``,
``prompt_template``), so a text embedding's key follows the prompt.

Every dataset has two built-in templates:

* ``paper`` reproduces the sentences of Restrepo et al. (2024) exactly,
  quirks included (protocol §1.1–1.3);
* ``default`` is for new work: it omits fields that leak the label
  (HAM10000 ``dx_type``; BRSET's co-annotated findings — hemorrhage,
  macular edema, ... — that nearly determine diabetic retinopathy;
  SatelliteBench's date, see protocol §7.2).

BRSET also has ``findings``: the ``default`` sentences plus the findings
(what ``default`` was before), for studies that want them knowingly.
:func:`leak_warnings` names the label-related fields a template carries;
the ingest report shows them.

Any other prompt is a path to a text file holding a format string over the
same fields (``{age}``, ``{sex}``...); literal braces are written ``{{ }}``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import InputError

#: Built-in templates per dataset kind: {kind: {name: format string}}.
TEMPLATES: dict[str, dict[str, str]] = {
    "ham10000": {
        "paper": "Patient diagnosed via {dx_type}. Age: {age} years. Sex: {sex}. "
                 "Localization: {localization}.",
        "default": "Dermatoscopic image of a skin lesion. Age: {age} years. Sex: {sex}. "
                   "Localization: {localization}.",
    },
    "brset": {
        "paper": ("An image from the {eye} eye of a {sex} patient, aged {age} years, {comorbidities}, "
                  "{diabetes_time}, {insulin}. The optic disc is {optic_disc}, vessels are {vessels}, "
                  "and the macula is {macula}. Conditions include macular edema: {macular_edema}, "
                  "scar: {scar}, nevus: {nevus}, amd: {amd}, vascular occlusion: {vascular_occlusion}, "
                  "drusens: {drusens}, hemorrhage: {hemorrhage}, retinal detachment: {retinal_detachment}, "
                  "myopic fundus: {myopic_fundus}, increased cup disc ratio: {increased_cup_disc}, "
                  "and other conditions: {other}."),
        "default": ("An image from the {eye} eye of a {sex} patient, aged {age} years, {comorbidities}, "
                    "{diabetes_time}, {insulin}. The optic disc is {optic_disc_state}, vessels are "
                    "{vessels_state}, and the macula is {macula_state}."),
        "findings": ("An image from the {eye} eye of a {sex} patient, aged {age} years, {comorbidities}, "
                    "{diabetes_time}, {insulin}. The optic disc is {optic_disc_state}, vessels are "
                    "{vessels_state}, and the macula is {macula_state}. Conditions include macular edema: "
                    "{macular_edema}, scar: {scar}, nevus: {nevus}, amd: {amd}, vascular occlusion: "
                    "{vascular_occlusion}, drusens: {drusens}, hemorrhage: {hemorrhage}, retinal "
                    "detachment: {retinal_detachment}, myopic fundus: {myopic_fundus}, increased cup "
                    "disc ratio: {increased_cup_disc}, and other conditions: {other}."),
    },
    "satellitebench": {
        # The fixed prompt of get_datasets.ipynb (090feab); "with," is in the original.
        "paper": ("An image from city {city} taken in date {date} with, {age0_4}% of the population "
                  "is aged 0-4, {age5_14}% aged 5-14, {afrocolombian}% are Afro-Colombian, and "
                  "{indian}% are of Indian descent."),
        "default": ("A satellite image of the city of {city}, where {age0_4}% of the population is "
                    "aged 0-4, {age5_14}% aged 5-14, {afrocolombian}% are Afro-Colombian, and "
                    "{indian}% are of Indian descent."),
    },
}


#: Prompt fields that carry (part of) the label, per dataset kind (protocol §7.2).
LEAKY_FIELDS: dict[str, tuple[str, ...]] = {
    "ham10000": ("dx_type",),
    "brset": ("macular_edema", "scar", "nevus", "amd", "vascular_occlusion", "drusens", "hemorrhage",
              "retinal_detachment", "myopic_fundus", "increased_cup_disc", "other"),
    "satellitebench": ("date",),
}


def leak_warnings(kind: str, template: "PromptTemplate", label_column: str | None = None) -> list[str]:
    """A warning when ``template`` uses label-related fields of ``kind`` (or the label column itself).

    Examples
    --------
    >>> leak_warnings("ham10000", PromptTemplate("paper", TEMPLATES["ham10000"]["paper"]))[0][:46]
    "prompt 'paper' carries label-related field(s) "
    >>> leak_warnings("brset", PromptTemplate("default", TEMPLATES["brset"]["default"]))
    []
    """
    leaky = set(LEAKY_FIELDS.get(kind, ())) | ({label_column} if label_column else set())
    used = [f for f in template.fields if f in leaky]
    if not used:
        return []
    return [f"prompt '{template.name}' carries label-related field(s) {used}: a text model reading them "
            "partly reads the label (use --prompt default for leak-free text)"]


@dataclass(frozen=True)
class PromptTemplate:
    """A named format string over prompt fields.

    Examples
    --------
    >>> p = PromptTemplate("demo", "Age: {age} years.")
    >>> p.fields
    ('age',)
    >>> p.render({"age": "80"})
    'Age: 80 years.'
    """

    name: str
    template: str

    @property
    def fields(self) -> tuple[str, ...]:
        """Field names the template uses, in order of first use."""
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError as exc:
            raise InputError(f"prompt template '{self.name}' is not a valid format string ({exc}); "
                             "write literal braces as {{ and }}") from None
        out: list[str] = []
        for _, name, _, _ in parsed:
            if name is None:
                continue
            if name.strip() == "" or name.isdigit():
                raise InputError(f"prompt template '{self.name}' has field {{{name}}}: use named fields "
                                 "such as {age}; write literal braces as {{ and }}")
            if name not in out:
                out.append(name)
        return tuple(out)

    def check(self, available: Sequence[str], what: str = "") -> "PromptTemplate":
        """Raise :class:`InputError` when the template uses a field not in ``available``."""
        unknown = [f for f in self.fields if f not in available]
        if unknown:
            raise InputError(f"prompt template '{self.name}' uses unknown field(s) {unknown}{what}; "
                             f"available: {sorted(available)}")
        return self

    def render(self, fields: Mapping[str, str]) -> str:
        """The text for one sample.

        A field is looked up by its whole name, so a column named like
        ``Patient.Age`` or ``dose[mg]`` is written ``{Patient.Age}`` /
        ``{dose[mg]}`` (no attribute or index access); a format spec
        (``{age:>3}``) and a conversion (``!r``) apply as in ``str.format``.

        Examples
        --------
        >>> PromptTemplate("t", "Age {Patient.Age} ({site!r}).").render({"Patient.Age": "041", "site": "back"})
        "Age 041 ('back')."
        """
        out = []
        try:
            for literal, name, spec, conversion in string.Formatter().parse(self.template):
                out.append(literal)
                if name is None:
                    continue
                value = fields[name]
                if conversion:
                    value = {"r": repr, "s": str, "a": ascii}[conversion](value)
                out.append(format(value, spec) if spec else str(value))
        except (KeyError, ValueError, IndexError) as exc:
            raise InputError(f"prompt template '{self.name}' cannot be rendered ({exc!r}); "
                             "use plain {field} placeholders") from None
        return "".join(out)


def resolve_prompt(kind: str, prompt: str, available: Sequence[str]) -> PromptTemplate:
    """The template for ``prompt`` (``paper``, ``default`` or a file path) of a dataset kind.

    A file's template is named ``file:<file name>``.

    Examples
    --------
    >>> resolve_prompt("ham10000", "paper", ["dx_type", "age", "sex", "localization"]).template[:22]
    'Patient diagnosed via '
    >>> resolve_prompt("ham10000", "nope", ["age"])
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: unknown prompt 'nope' for ham10000: use paper, default or the path of a template file
    """
    builtins = TEMPLATES.get(kind, {})
    if prompt in builtins:
        return PromptTemplate(prompt, builtins[prompt]).check(available)
    path = Path(prompt)
    if not path.is_file():
        names = ", ".join(builtins) or "no built-in template"
        raise InputError(f"unknown prompt '{prompt}' for {kind}: use {names + ' or ' if builtins else ''}"
                         "the path of a template file")
    return PromptTemplate(f"file:{path.name}", read_template_file(path)).check(
        available, f" (in {path})")


def read_template_file(path: str | Path) -> str:
    """A template file's text (UTF-8, one trailing newline stripped)."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"template file {path}: not valid UTF-8; re-save it as UTF-8") from None
    text = text.replace("\r\n", "\n").removesuffix("\n")
    if not text.strip():
        raise InputError(f"template file {path} is empty: write a format string such as 'Age: {{age}}.'")
    return text
