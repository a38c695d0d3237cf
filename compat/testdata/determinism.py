"""The one place where the known-answer data is made deterministic.

Django draws random strings (salts, session keys, CSRF secrets, unusable passwords) with
`secrets.choice` and reads the clock with `time.time` and `django.utils.timezone.now`.
`install()` replaces exactly these, before Django is imported:

- `secrets.choice` draws from `random.Random(SEED)`: the same strings on every run;
- `time.time` and `django.utils.timezone.now` read `CLOCK`, which stands at `refs.FIXED_TS`
  until a probe moves it (`CLOCK.at(ts)`), so cookie expiry dates, `last_login` and session
  `expire_date` values are fixed too.

Salts passed explicitly (every known-answer hash) do not depend on this. The driver also sets
PYTHONHASHSEED=0. No field of the output is normalised afterwards: anything that still varied
between two runs would fail the freshness test (tests/testdata_fresh.rs).
"""
import contextlib
import datetime
import random
import secrets
import time

from refs import FIXED_TS

SEED = 20231114


class Clock:
    def __init__(self, ts):
        self.ts = float(ts)

    def time(self):
        return self.ts

    @contextlib.contextmanager
    def at(self, ts):
        saved, self.ts = self.ts, float(ts)
        try:
            yield
        finally:
            self.ts = saved


CLOCK = Clock(FIXED_TS)


def install():
    rng = random.Random(SEED)
    secrets.choice = rng.choice
    time.time = CLOCK.time

    import django.utils.timezone as tz

    def now():
        from django.conf import settings

        if settings.USE_TZ:
            return datetime.datetime.fromtimestamp(CLOCK.ts, datetime.timezone.utc)
        return datetime.datetime.fromtimestamp(CLOCK.ts)

    # Before django.setup(): model field defaults (`default=timezone.now`) and
    # `from django.utils.timezone import now` bind to this one.
    tz.now = now
