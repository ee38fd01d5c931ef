"""Regenerate the student notebooks in exercises/ from solutions/.

Usage: python -m coursetools.generate [ASSIGNMENT ...]   (default: all)
"""

from __future__ import annotations

import sys

from coursetools.course import (
    CourseError,
    assignments,
    find_root,
    resolve_assignment,
    run_nbgrader,
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        root = find_root()
        names = [resolve_assignment(root, a) for a in argv] or assignments(root)
        for name in names:
            # Without --force nbgrader skips an existing release and still exits 0.
            run_nbgrader(root, "generate_assignment", name, "--force")
            print(f"generated exercises/{name}/ from solutions/{name}/")
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
