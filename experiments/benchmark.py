"""The benchmark (same as ``autoquant bench``): autoquant's search against an exhaustive sweep.

    python experiments/benchmark.py            # the full plan; writes experiments/RESULTS.md
    python experiments/benchmark.py --quick    # a few minutes

Every slow piece is cached under $AUTOQUANT_CACHE/bench, so an interrupted run resumes.
"""

import sys

from autoquant.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
