"""``python -m scratchnet.data {download,verify,where}``: fetch, check or locate the datasets."""
from __future__ import annotations

import sys

from .. import cli
from .datasets import DATASETS, DatasetError, download_dataset, find_dataset_dir, search_dirs, \
    verify_dataset
from .natural import NATURAL_SETS, download_natural, find_natural_dir, verify_natural


def main(argv: list[str] | None = None) -> int:
    with cli.interrupts_exit("files already downloaded and verified are kept; a file being "
                             "downloaded was discarded"):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = cli.ArgumentParser(prog="python -m scratchnet.data",
                                description="Fetch, verify or locate MNIST, Fashion-MNIST and the natural "
                                            "images (train400, bsd68, set12).")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [("download", "download missing files (verified by sha256)"),
                       ("verify", "re-hash every file and compare with the known sha256"),
                       ("where", "print which folder would be used, and the search order")]:
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--dataset", choices=[*DATASETS, *NATURAL_SETS, "all"], default="all")
        p.add_argument("--root", "--data-dir", dest="root", default=None,
                       help="folder holding <dataset>/ (and natural/<set>/) subfolders (searched first; downloads go "
                            "here when given, else into the per-user cache)")
    args = parser.parse_args(argv)
    names = [*DATASETS, *NATURAL_SETS] if args.dataset == "all" else [args.dataset]
    try:
        for name in names:
            natural = name in NATURAL_SETS
            if args.command == "download":
                fetch = download_natural if natural else download_dataset
                print(f"{name}: {fetch(name, args.root)}")
            elif args.command == "verify":
                verify = verify_natural if natural else verify_dataset
                checked = verify(name, args.root)
                if natural:
                    print(f"{name}: {len(checked)} files ok ({next(iter(checked.values())).parent})")
                else:
                    for fname, path in checked.items():
                        print(f"{name}/{fname}: ok ({path})")
            else:
                folder = (find_natural_dir(name, args.root) if natural
                          else find_dataset_dir(name, root=args.root))
                print(f"{name}: {folder or 'not found'}")
        if args.command == "where":
            print("search order: " + ", ".join(str(d) for d in search_dirs(args.root)))
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
