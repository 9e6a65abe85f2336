"""The demo town: a generated town of about 50,000 inhabitants whose devices publish readings.

The entry points: :class:`Town` (map, devices, scenario, entities, readings),
:func:`ultralight` and :func:`topic` (the wire form of a reading), :func:`device_groups` and
:func:`devices` (IoT Agent provisioning), and :mod:`.runner` (provision, create entities,
backfill, live). See README.md beside this file.
"""

from agilecity.ingest.simulator.base import Reading
from agilecity.ingest.simulator.provisioning import device_groups, devices, topic, ultralight
from agilecity.ingest.simulator.scenario import Scenario
from agilecity.ingest.simulator.town import Town

__all__ = ["Reading", "Scenario", "Town", "device_groups", "devices", "topic", "ultralight"]
