"""Held alerts (an objective's burn) in the grouping engine, on a fake clock: they fire until released,
whatever resolve_timeout; released they resolve at the next flush; released before they were ever
notified they are dropped unpaged. Alerts about failures keep their labels and fingerprints."""

from __future__ import annotations

from pipelines.alert_routing.alerts import LABEL_NAMES, Alert, fingerprint, full_values
from pipelines.slo.burn import SloBurn
from pipelines.slo.model import SRE_WORKBOOK_ALERTS, Indicator, Objective, Selector
from tests.pipelines.alert_routing.helpers import make_failure
from tests.pipelines.alert_routing.test_grouping import INTERVAL, RESOLVE, WAIT, advance, engine

VALUES = ("data", "orders-db", "", "", "page", "SLOBurn", "checkout", "1h", "5m")


def burn() -> SloBurn:
    o = Objective("checkout", "Checkout", "", "frontend", "", Indicator("c", Selector("frontend", "place_order"),
                                                                           "availability"),
                  0.999, 28 * 86400.0, None, None, "test")
    return SloBurn(o, SRE_WORKBOOK_ALERTS[0], 20.0, 21.0, 0.8, (), None, 0.5)


def test_a_held_alert_fires_past_resolve_timeout_until_released() -> None:
    eng, sent, clock, _ = engine(group_by=["alertname", "slo"])
    eng.add(VALUES, burn(), held=True)
    advance(eng, clock, WAIT + 1)
    assert [n.status for n in sent] == ["firing"]
    assert sent[0].alerts[0].labels == {"team": "data", "service": "orders-db", "severity": "page",
                                        "alertname": "SLOBurn", "slo": "checkout", "long_window": "1h",
                                        "short_window": "5m"}
    assert sent[0].group_labels == {"alertname": "SLOBurn", "slo": "checkout"}
    assert sent[0].alerts[0].annotations["burn_rate_long"] == "20.00"
    advance(eng, clock, RESOLVE * 3, step=INTERVAL)
    # no news for three resolve_timeouts: still burning (repeated after repeat_interval, never resolved)
    assert [n.status for n in sent] == ["firing", "firing"]
    eng.release(VALUES)
    advance(eng, clock, INTERVAL)
    assert [n.status for n in sent] == ["firing", "firing", "resolved"]
    assert eng.groups == []


def test_a_held_alert_released_before_it_was_notified_is_dropped_and_a_new_burn_pages_again() -> None:
    eng, sent, clock, _ = engine()
    eng.add(VALUES, burn(), held=True)
    eng.release(VALUES)
    advance(eng, clock, WAIT + 1)
    assert sent == [] and eng.groups == []
    eng.add(VALUES, burn(), held=True)
    eng.release(VALUES)
    eng.add(VALUES, burn(), held=True)  # burning again before the flush: the release is forgotten
    advance(eng, clock, WAIT + 1)
    assert [n.status for n in sent] == ["firing"]
    eng.release(("nobody",))  # releasing an alert that is not there does nothing


def test_failure_alerts_keep_their_labels_and_fingerprints() -> None:
    short = ("payments", "payment", "charge", "checkout", "page")
    full = full_values(short)
    assert len(full) == len(LABEL_NAMES) and full[5:] == ("", "", "", "")
    assert fingerprint(full) == fingerprint(short + ("",) * 4)
    alert = Alert(short, make_failure(), 0.0, 1.7e9)
    assert alert.values == full
    assert alert.labels == {"team": "payments", "service": "payment", "span_name": "charge", "signal": "checkout",
                            "severity": "page"}
    eng, sent, clock, _ = engine(group_by=["..."])
    eng.add(short, make_failure())
    advance(eng, clock, WAIT + 1)
    assert sent[0].group_labels == alert.labels  # grouped by every label: the empty ones are no labels
