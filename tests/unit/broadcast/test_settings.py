"""broadcast.yaml is validated at load, with messages naming the field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.broadcast.settings import (
    DEFAULT_CONFIG,
    BroadcastConfig,
    BroadcastConfigError,
    BroadcastSettings,
)


def _write(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data.update(changes)
    path = tmp_path / "broadcast.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_the_shipped_config_is_the_tuanyuan_schedule(config: BroadcastConfig) -> None:
    assert [s.radius_km for s in config.radius_schedule] == [100, 200, 300, 500]
    assert [s.within for s in config.radius_schedule] == [dt.timedelta(hours=h) for h in (1, 2, 3)] + [None]
    assert config.channels_for(exercise=False) == ("media", "cyberspace", "outdoor_screens")
    assert config.channels_for(exercise=True) == ("media", "cyberspace")
    assert config.tz.utcoffset(None) == dt.timedelta(hours=8)


def test_a_shortened_schedule_is_configuration(tmp_path: Path) -> None:
    path = _write(tmp_path, radius_schedule=[{"within": 2, "radius_km": 100}, {"within": 4, "radius_km": 200},
                                             {"within": None, "radius_km": 500}])
    assert [s.within for s in BroadcastConfig.load(path).radius_schedule] == [
        dt.timedelta(seconds=2), dt.timedelta(seconds=4), None]


@pytest.mark.parametrize(("changes", "message"), [
    ({"radius_schedule": [{"within": "PT1H", "radius_km": 100}]}, "the last step must have within: null"),
    ({"radius_schedule": [{"within": "PT2H", "radius_km": 100}, {"within": "PT1H", "radius_km": 200},
                          {"within": None, "radius_km": 300}]}, "radius_schedule[1]: within must grow"),
    ({"radius_schedule": [{"within": "PT1H", "radius_km": 300}, {"within": None, "radius_km": 200}]},
     "radius_schedule[1]: radius_km must grow"),
    ({"channels": {"carrier_pigeon": {"accepts_exercises": True}}}, "unknown channel(s) ['carrier_pigeon']"),
    ({"sender": "police cn"}, "sender: Value error, must not contain spaces"),
    ({"utc_offset": "Z"}, "utc_offset: Value error, must look like +08:00"),
    ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
])
def test_invalid_config_is_refused_with_the_field(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BroadcastConfigError) as info:
        BroadcastConfig.load(_write(tmp_path, **changes))
    assert message in str(info.value)


def test_environment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BroadcastSettings().metrics_port == 9103
    monkeypatch.setenv("REFERRAL_BUS_BROADCAST_METRICS_PORT", "0")
    assert BroadcastSettings().metrics_port == 0
