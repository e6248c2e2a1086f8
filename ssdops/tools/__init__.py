"""The tools beside the library: ``ssdops bench`` (:mod:`.bench`), ``ssdops compare`` (:mod:`.compare`) and
the ``ssdops`` command (:mod:`.cli`). They use only the public API of :mod:`ssdops`."""
