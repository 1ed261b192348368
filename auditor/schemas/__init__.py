"""JSON Schemas subaudit publishes: the scan result (``result.schema.json``) and trait batteries
(``battery.schema.json``)."""
