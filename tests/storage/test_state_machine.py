"""The log against a plain in-memory model: random appends, commits, seals, reopens, crashes."""

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import ValidationError
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.reader import to_table
from buff_dataplane.storage.verify import verify_log

STREAMS = ("binance-usdm/trade/BTC-USDT-PERP", "binance-spot/trade/BTC-USDT")
T0 = 1_723_161_256_000
GROUP = 3
CFG = LogConfig(
    group_commit_events=GROUP, segment_max_events=1000, max_payload_bytes=64, fsync=False
)


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp()) / "data"
        self.log = open_log(self.dir, CFG, clock=lambda: 0)
        self.durable = {s: [] for s in STREAMS}
        self.pending = {s: [] for s in STREAMS}
        self.sealed = dict.fromkeys(STREAMS, 0)
        self.seg_day = dict.fromkeys(STREAMS)  # UTC day of the open segment's first event

    def _model_append(self, stream, payload, ts):
        day = ts // 86_400_000
        if self.seg_day[stream] is None:
            self.seg_day[stream] = day
        elif self.seg_day[stream] != day:  # a segment never spans two UTC days
            self._model_seal(stream)
            self.seg_day[stream] = day
        self.pending[stream].append(payload)
        if len(self.pending[stream]) >= GROUP:
            self._commit_model(stream)

    def _model_seal(self, stream):
        self._commit_model(stream)
        self.sealed[stream] = len(self.durable[stream])
        self.seg_day[stream] = None

    def teardown(self) -> None:
        self.log._release_lock()
        shutil.rmtree(self.dir.parent, ignore_errors=True)

    @rule(stream=st.sampled_from(STREAMS), payload=st.binary(min_size=0, max_size=80))
    def append(self, stream, payload):
        w = self.log.writer(stream)
        if len(payload) > CFG.max_payload_bytes:
            with pytest.raises(ValidationError):
                w.append(payload, T0, T0)
            return
        seq = w.append(payload, T0, T0)
        assert seq == len(self.durable[stream]) + len(self.pending[stream]) + 1
        self._model_append(stream, payload, T0)

    @rule(
        stream=st.sampled_from(STREAMS),
        payloads=st.lists(st.binary(max_size=64), max_size=8),
        day_step=st.sampled_from([0, 1]),
    )
    def append_batch(self, stream, payloads, day_step):
        # day_step moves the ingest clock past a UTC midnight inside the batch.
        ts = [
            T0 + (86_400_000 * day_step if k >= len(payloads) // 2 else 0)
            for k in range(len(payloads))
        ]
        last = self.log.writer(stream).append_batch(payloads, [None] * len(payloads), ts)
        for payload, t in zip(payloads, ts, strict=True):
            self._model_append(stream, payload, t)
        assert last == len(self.durable[stream]) + len(self.pending[stream])

    def _commit_model(self, stream):
        self.durable[stream] += self.pending[stream]
        self.pending[stream] = []

    @rule(stream=st.sampled_from(STREAMS))
    def commit(self, stream):
        self.log.writer(stream).commit()
        self._commit_model(stream)

    @rule(stream=st.sampled_from(STREAMS))
    def seal(self, stream):
        self.log.writer(stream).seal()
        self._model_seal(stream)

    @rule()
    def reopen(self):
        self.log.close()
        for s in STREAMS:
            self._model_seal(s)
        self.log = open_log(self.dir, CFG, clock=lambda: 0)

    @precondition(lambda self: any(self.pending.values()) or any(self.durable.values()))
    @rule()
    def crash(self):
        for w in self.log.writers():
            if w._journal is not None:
                w._journal.close()
        self.log._release_lock()
        for s in STREAMS:
            self.pending[s] = []
            self._model_seal(s)  # recovery seals the journal
        self.log = open_log(self.dir, CFG, clock=lambda: 0)

    @invariant()
    def sealed_log_matches_model(self):
        reader = open_log(self.dir, readonly=True)
        for s in STREAMS:
            if s not in {str(x) for x in reader.stream_ids()}:
                assert self.sealed[s] == 0
                continue
            table = to_table(reader, [s], columns=["ingest_seq", "payload_raw"])
            assert table.column("payload_raw").to_pylist() == self.durable[s][: self.sealed[s]]
            assert table.column("ingest_seq").to_pylist() == list(range(1, self.sealed[s] + 1))

    @invariant()
    def verify_log_is_clean(self):
        report = verify_log(self.dir)
        assert report.ok, [str(f) for f in report.faults]


LogModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestLogModel = LogModel.TestCase
