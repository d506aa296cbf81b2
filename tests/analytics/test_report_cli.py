"""`paymux report` reads the store directly and prints the analytics as tables."""

from __future__ import annotations

import json
import time

from paymux.cli import main as cli
from paymux.cli import report

OK = {"connector": "stripe", "status": "captured"}


def seed_recent(seeded):
    now = time.time()
    seeded.payment([OK], at=now - 60)
    seeded.payment(
        [
            {
                "connector": "stripe",
                "status": "declined",
                "code": "do_not_honor",
                "klass": "soft_route",
                "raw_code": "05",
            },
            {"connector": "adyen", "status": "captured", "fee": 25},
        ],
        at=now - 120,
        country="FR",
    )
    seeded.payment(
        [
            {
                "connector": "adyen",
                "status": "declined",
                "code": "insufficient_funds",
                "klass": "issuer_not_now",
                "raw_code": "51",
            }
        ],
        at=now - 30,
    )
    seeded.payment([OK], at=now - 3 * 3600)  # outside --since 1h


def test_report_prints_tables_for_each_psp(seeded, capsys):
    seed_recent(seeded)
    assert cli.main(["report", "--since", "1h", "--db", str(seeded.path)]) == 0
    out = capsys.readouterr().out
    for text in (
        "Approvals",
        "Decline reasons",
        "Failover",
        "PSP latency",
        "Fees",
        "stripe",
        "adyen",
        "do_not_honor",
        "stripe->adyen",
        "66.7%",
    ):
        assert text in out, text


def test_report_json_groups_by_connector_and_country(seeded, capsys):
    seed_recent(seeded)
    assert (
        report.main(
            [
                "--since",
                "1h",
                "--by",
                "connector,country",
                "--db",
                str(seeded.path),
                "--json",
                "--only",
                "approvals",
            ]
        )
        == 0
    )
    body = json.loads(capsys.readouterr().out)
    groups = {(g["key"]["connector"], g["key"]["country"]): g for g in body["approvals"]["groups"]}
    assert groups[("stripe", "DE")]["payments"] == 1
    assert groups[("stripe", "FR")]["approved"] == 1  # recovered on adyen
    assert body["approvals"]["totals"]["payments"] == 3


def test_report_reads_the_store_named_in_the_config(seeded, tmp_path, capsys):
    seed_recent(seeded)
    config = tmp_path / "paymux.toml"
    config.write_text(f'[storage]\npath = "{seeded.path}"\n')
    assert report.main(["--config", str(config), "--json", "--only", "declines"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["declines"]["totals"]["declines"] == 2


def test_report_rejects_bad_options(tmp_path, capsys):
    assert report.main(["--since", "soon", "--db", str(tmp_path / "x.db")]) == 2
    assert report.main(["--by", "planet"]) == 2
    assert report.main(["--db", str(tmp_path / "missing.db")]) == 1
    err = capsys.readouterr().err
    assert "--since" in err and "--by" in err and "no store" in err
