"""nbgrader configuration for the course.

Run every nbgrader command from this folder (the repository root): elsewhere
nbgrader finds no config and creates a stray gradebook there.
"""

from pathlib import Path

from coursetools.course import (
    AUTOGRADED_DIR,
    CELL_TIMEOUT,
    FEEDBACK_DIR,
    GRADEBOOK,
    RELEASE_DIR,
    SOURCE_DIR,
    SUBMITTED_DIR,
)

c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)

ROOT = Path(__file__).resolve().parent

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "rnn-course"
# Instructor notebooks with solutions and hidden tests are the source ...
c.CourseDirectory.source_directory = SOURCE_DIR
# ... and generate_assignment writes the student notebooks, which are committed.
c.CourseDirectory.release_directory = RELEASE_DIR
c.CourseDirectory.submitted_directory = SUBMITTED_DIR
c.CourseDirectory.autograded_directory = AUTOGRADED_DIR
c.CourseDirectory.feedback_directory = FEEDBACK_DIR
c.CourseDirectory.db_url = f"sqlite:///{ROOT / GRADEBOOK}"

# Generated notebooks carry no outputs, so `exercises/` stays byte-for-byte what
# generate_assignment writes from `solutions/`.
c.ClearOutput.enabled = True

# A student who deletes a test cell must not silently lose its points: the
# autograder puts the cell back from the gradebook and runs it.
c.OverwriteCells.add_missing_cells = True

# Per-cell limit while autograding; a cell that runs longer is interrupted.
c.ExecutePreprocessor.timeout = CELL_TIMEOUT
