"""`python -m bench` (what `make bench` runs); `python -m bench --help` lists the options.

`python -m bench load ...` runs the service-request load benchmark instead (bench/load.py).
"""

import sys


def _main() -> int:
    if sys.argv[1:2] == ["load"]:
        from bench.load import main as load_main

        return load_main(sys.argv[2:])
    from bench.run import main

    return main()


sys.exit(_main())
