"""JobSpec: one attribution job, the same on every path (Ray, attribute-local, the REST body).

    from attribution_worker.spec import JobSpec
    spec = JobSpec(dataset="cqa", split="train", engine={"teacher": "google/flan-t5-xl", "k": 5}, shard_size=1000)
    spec = JobSpec(dataset="cqa", teacher="google/flan-t5-xl", k=5)   # the same: engine fields may be given flat
    spec.engine                       # the engine's AttributionConfig (config.py): every engine option
    spec.default_job_id()             # job-cqa-<sha1 of the output fields>, used by every executor

The spec is stored as the job row's `spec` (nested: {"dataset": ..., "engine": {...}, ...}). Old
flat job rows (engine fields at the top level) still load: engine fields given at the top level
are moved into `engine`. Help text of every field is its description / docstring; the command
line flags of `salient attribute` and `attribute-local` are generated from these fields
(`add_spec_arguments`, `spec_fields_from_args`). Importing this module loads no torch.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from storage.settings import setting

from .cluster import job_setting
from .config import AttributionConfig
from .constants import ANSWER_BACKENDS, BASELINES, DTYPES, METHODS, TARGETS

# Fields that only change how a job runs, not what it writes: they may differ when a job is resumed
# and are left out of the derived job id. Only the Ray executor reads them (attribute-local has no
# flags for them).
RUNTIME_FIELDS = ("actors", "num_cpus_per_actor", "max_in_flight_per_actor", "max_retries", "actor_resources")


def _help(name: str) -> str:
    return setting(name).help


class JobSpec(BaseModel):
    """One attribution job, stored as the job row's `spec` (and job.json beside its shards)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="An ingested dataset name (`salient datasets ls`).")
    split: str | None = Field(None, description="One split; None attributes every split of the dataset.")
    engine: AttributionConfig = Field(description="The engine's options (AttributionConfig); its fields may also be given flat.")
    limit: int | None = Field(None, ge=1, description="Attribute only the first N rows of the dataset.")
    dataset_versions: list[str] | None = Field(
        None, description="The dataset parts the job reads, as split:version; filled in when the job is created, "
                          "so a re-ingested dataset gets a new job id and a resume over changed data is refused.")
    shard_size: int = Field(default_factory=lambda: job_setting("shard_size"), ge=1, description=_help("shard_size"))
    actors: int = Field(default_factory=lambda: job_setting("actors"), ge=0, description=_help("actors"))
    num_cpus_per_actor: float = Field(default_factory=lambda: job_setting("num_cpus_per_actor"), gt=0,
                                      description=_help("num_cpus_per_actor"))
    max_in_flight_per_actor: int = Field(default_factory=lambda: job_setting("max_in_flight_per_actor"), ge=1,
                                         description=_help("max_in_flight_per_actor"))
    max_retries: int = Field(default_factory=lambda: job_setting("max_retries"), ge=0, description=_help("max_retries"))
    actor_resources: dict[str, float] = Field(default_factory=dict,
                                              description="Custom Ray resources each actor needs (pins actors to nodes).")

    @model_validator(mode="before")
    @classmethod
    def _lift_engine_fields(cls, data: Any) -> Any:
        """Engine fields given at the top level (flat REST bodies, old job rows) move into `engine`."""
        if not isinstance(data, dict):
            return data
        flat = {k: data[k] for k in data if k in AttributionConfig.model_fields and k not in cls.model_fields}
        if not flat:
            return data
        rest = {k: v for k, v in data.items() if k not in flat}
        engine = data.get("engine") or {}
        engine = engine.model_dump() if isinstance(engine, AttributionConfig) else dict(engine)
        both = sorted(set(flat) & set(engine))
        if both:
            raise ValueError(f"{', '.join(both)} given both at the top level and inside engine: give each once")
        return {**rest, "engine": {**engine, **flat}}

    # convenience: the fields every caller reads
    @property
    def teacher(self) -> str:
        return self.engine.teacher

    @property
    def method(self) -> str:
        return self.engine.method

    def output_fields(self) -> dict:
        """The fields that decide what the job writes (everything but RUNTIME_FIELDS)."""
        return {k: v for k, v in self.model_dump().items() if k not in RUNTIME_FIELDS}

    def default_job_id(self) -> str:
        fields = self.output_fields()
        if fields["engine"].get("scaffolding") is None:  # left at its default: ids from before the field stay
            fields["engine"].pop("scaffolding", None)
        key = json.dumps(fields, sort_keys=True, default=str)
        return f"job-{self.dataset}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"

    def engine_config(self, template: str, scaffolding: str | None = None) -> dict:
        """The AttributionConfig fields for an executor, template and scaffolding resolved (device chosen by the
        executor)."""
        update = {"template": self.engine.template or template, "scaffolding": self.engine.scaffolding or scaffolding}
        return self.engine.model_copy(update=update).model_dump()

    @classmethod
    def from_stored(cls, stored: dict) -> "JobSpec":
        """A job row's spec (any version: flat or nested; unknown keys such as `kind` are dropped)."""
        known = set(cls.model_fields) | set(AttributionConfig.model_fields)
        return cls(**{k: v for k, v in stored.items() if k in known})


# ---------------------------------------------------------------- command line, from the same fields
_CHOICES = {"method": METHODS, "target": TARGETS, "baseline": BASELINES, "dtype": DTYPES, "answers": ANSWER_BACKENDS}
_NOT_FLAGS = {"engine", "dataset_versions", "extra"}
_FLAG_NAMES = {"actor_resources": "--resources"}  # kept from the first release


def cli_fields(*, ray: bool = True) -> list[tuple[str, Any]]:
    """(name, FieldInfo) of every flag: JobSpec fields, then AttributionConfig fields."""
    out = [(n, f) for n, f in JobSpec.model_fields.items() if n not in _NOT_FLAGS and (ray or n not in RUNTIME_FIELDS)]
    out += [(n, f) for n, f in AttributionConfig.model_fields.items() if n not in _NOT_FLAGS]
    return out


def _base_type(annotation) -> type:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_origin(annotation) or annotation


def add_spec_arguments(parser: argparse.ArgumentParser, *, ray: bool = True) -> None:
    """One flag per spec field (`--shard-size`, `--n-steps`, `--faithfulness/--no-faithfulness`, ...).

    Every flag defaults to None (not given), so the spec's own defaults (and SALIENT_<NAME> for
    job settings) apply; the help is the field's description with its default.
    """
    for name, info in cli_fields(ray=ray):
        flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
        kind = _base_type(info.annotation)
        default = info.get_default(call_default_factory=True) if not info.is_required() else None
        text = (info.description or "").replace("%", "%%")
        text += " (required)" if info.is_required() else f" (default {default})"
        if name in RUNTIME_FIELDS and name != "actor_resources":
            text += f"; env {setting(name).env_var}"
        kw: dict = {"dest": name, "default": None, "help": text}
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif kind is dict:
            kw.update(type=json.loads, metavar="JSON")
        else:
            kw["type"] = kind
            if name in _CHOICES:
                kw["choices"] = _CHOICES[name]
        parser.add_argument(flag, **kw)


def spec_fields_from_args(args: argparse.Namespace, *, ray: bool = True) -> dict:
    """The spec fields given on the command line (flags left out are not in the dict)."""
    return {n: getattr(args, n) for n, _ in cli_fields(ray=ray) if getattr(args, n, None) is not None}


def validation_message(exc) -> str:
    """A pydantic ValidationError as one line naming each flag."""
    parts = []
    for e in exc.errors():
        loc = [str(x) for x in e["loc"] if x != "engine"]
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(msg if msg.startswith("--") or not loc else f"--{'-'.join(loc).replace('_', '-')}: {msg}")
    return "; ".join(parts)
