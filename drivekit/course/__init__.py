"""Layer 9, the course beside the experiment: ``widgets`` (the notebooks' explorers and panel), ``candidates``
(the answers the reward explorers rank), ``exercises`` (self-checks; solutions in ``notebooks/solutions/``),
``reproduce`` (run the notebooks), ``notices`` (library notices kept out of the cells; installed here).
"""
from drivekit.course.notices import quiet as _quiet

_quiet()
