"""Pure decisions: templating, schedules, the HttpTask state machine, fan-out and fan-in.

Every function here takes ``now`` (and whatever else it needs) as arguments and returns values;
none performs I/O. The controller layer feeds them objects and writes what they return.
"""
