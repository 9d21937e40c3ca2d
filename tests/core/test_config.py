import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import ConfigError


def test_digest_is_stable_and_changes_with_any_value():
    assert LogConfig().digest() == LogConfig().digest()
    assert LogConfig(group_commit_ms=50).digest() != LogConfig().digest()


def test_config_is_frozen():
    cfg = LogConfig()
    with pytest.raises(AttributeError):
        cfg.group_commit_ms = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"group_commit_ms": 0},
        {"max_payload_bytes": 1},
        {"zstd_level": 99},
        {"segment_max_events": -1},
    ],
)
def test_out_of_range_values_are_refused_naming_the_key(kwargs):
    (key,) = kwargs
    with pytest.raises(ConfigError, match=key):
        LogConfig(**kwargs)


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match="unknown_knob"):
        LogConfig.from_dict({"unknown_knob": 1})


def test_from_dict_round_trips():
    cfg = LogConfig(group_commit_events=7)
    assert LogConfig.from_dict(cfg.to_dict()) == cfg
