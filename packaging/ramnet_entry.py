"""Entry script of the frozen ``ramnet`` executable (PyInstaller runs it as ``__main__``)."""

import multiprocessing

from ramnet.cli import main

if __name__ == "__main__":
    # A frozen executable is also what multiprocessing starts for its helpers: the resource
    # tracker that shared memory (the sidecar) registers with is ``ramnet -B -s -c "from
    # multiprocessing.resource_tracker import main; ..."``. PyInstaller's freeze_support runs
    # such a helper and exits; without it, the CLI would answer "No such option: -B".
    multiprocessing.freeze_support()
    main()
