"""`salient demo`: the whole pipeline end to end on this machine (see api/demo.py)."""
from __future__ import annotations

from pathlib import Path

from .common import open_catalog


def register(sub) -> None:
    from api.demo import default_datasets_dir

    p = sub.add_parser("demo", help="ingest the shared datasets, attribute e-SNLI on local Ray, query, train a student")
    p.add_argument("--datasets-dir", type=Path, default=None,
                   help=f"the DSS datasets folder (default: $SALIENT_SHARED_DATASETS or {default_datasets_dir()})")
    p.add_argument("--rows", type=int, default=400, help="e-SNLI validation rows to attribute (default 400)")
    p.add_argument("--teacher-steps", type=int, default=1200, help="teacher fitting steps (default 1200)")
    p.add_argument("--student-steps", type=int, default=60, help="student training steps (default 60)")
    p.add_argument("--via-service", action="store_true",
                   help="start the REST service in this process and drive the demo over HTTP (api/demo_service.py)")
    p.add_argument("--report", type=Path, default=Path("demo-report.html"),
                   help="--via-service: where to write the HTML report (default demo-report.html)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from api.demo import default_datasets_dir, run_demo

    if args.via_service:
        from api.demo_service import run_service_demo

        run_service_demo(args.store, datasets_dir=args.datasets_dir or default_datasets_dir(), rows=args.rows,
                         teacher_steps=args.teacher_steps, student_steps=args.student_steps, report=args.report)
        return 0

    with open_catalog(args) as cat:
        run_demo(cat, datasets_dir=args.datasets_dir or default_datasets_dir(), rows=args.rows,
                 teacher_steps=args.teacher_steps, student_steps=args.student_steps)
    return 0
