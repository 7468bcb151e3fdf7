"""`salient demo`: the whole pipeline end to end on this machine (see api/demo.py).

One flag per DemoConfig field (`--student-rows`, `--seeds`, ...), its docstring as help."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .common import open_catalog


def register(sub) -> None:
    from api.demo import DemoConfig, default_datasets_dir
    from student_trainer.config import field_docs

    p = sub.add_parser("demo", help="ingest the shared datasets, fine-tune an e-SNLI teacher, attribute on local Ray, "
                                    "query, distil a student with and without the teacher's rationales")
    p.add_argument("--datasets-dir", type=Path, default=None,
                   help=f"the DSS datasets folder (default: $SALIENT_SHARED_DATASETS or {default_datasets_dir()})")
    docs = field_docs(DemoConfig)
    for f in dataclasses.fields(DemoConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        extra = {"nargs": "+"} if isinstance(default, list) else {}
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=int, default=default,
                       help=f"{docs[f.name]} (default: {default})", **extra)
    p.add_argument("--via-service", action="store_true",
                   help="start the REST service in this process and drive the demo over HTTP (api/demo_service.py)")
    p.add_argument("--report", type=Path, default=None,
                   help="--via-service: where to write the HTML report (default: demo-report.html in the store's local "
                        "directory: the store itself, or its catalog cache for an s3:// store)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from api.demo import DemoConfig, default_datasets_dir, run_demo

    cfg = DemoConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DemoConfig)})
    datasets_dir = args.datasets_dir or default_datasets_dir()
    if args.via_service:
        from api.demo_service import run_service_demo

        run_service_demo(args.store, datasets_dir=datasets_dir, cfg=cfg, report=args.report)
        return 0
    with open_catalog(args) as cat:
        run_demo(cat, datasets_dir=datasets_dir, cfg=cfg)
    return 0
