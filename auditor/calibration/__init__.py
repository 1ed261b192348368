"""Calibration profiles: how a base's students move on data that carries nothing (``subaudit calibrate``).

A profile (:class:`~auditor.calibration.profile.NoiseProfile`) holds K null pairs (datasets the base wrote for the
format's prompts, scanned at the scan's budget) and D decoy pairs (datasets written by the base fine-tuned on a
chat set in ``decoys/`` that expresses a trait no built-in battery measures). Each pair is an ordinary probe scan
without a null arm; the profile keeps every graded option's mean share for the dataset- and the control-student.

Profiles are keyed (:func:`profile_key`) by the base's content fingerprint, the format, the students' settings and
the budget; a scan with ``--calibration auto`` uses the matching one from the cache, or the one shipped in
``profiles/`` (the embedded default base's), for any subset of the profile's batteries.
"""
