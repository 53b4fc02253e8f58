"""srm with parity repair (fec = "K+N"): a sender and three receivers behind
independent loss, in a network namespace the test makes. Parity repairs a
different loss at each receiver, so the sender sends per block what the
worst receiver misses, not every datagram any receiver lost."""

import os
import subprocess

from test_srm import Run, netns, netsim, random_file, sha256  # noqa: F401 (netns is a fixture)


def wire_ratio(tx):
    """Datagrams on the wire from the sender per data datagram."""
    return (tx["sequenced"] + tx["repaired"] + tx.get("parity_sent", 0)) / tx["sequenced"]


def plain_required(tx, rx):
    """What plain NAK repair needs for this loss: each datagram some
    receiver lost, once, and again for each time its repair was lost too
    (test_srm's bound, from each receiver's netsim counters)."""
    p = [r["netsim"][0]["lost"] / r["netsim"][0]["in"] for r in rx]
    none_lost = 1.0
    for q in p:
        none_lost *= 1 - q
    return tx["sequenced"] * (1 - none_lost) / (1 - max(p)), p


def test_three_receivers_at_ten_percent_loss_repaired_by_parity(start_daemon, tmp_path, netns):
    src = random_file(tmp_path / "image.bin", 4 << 20)
    run = Run(start_daemon, tmp_path, netns, [netsim(0.1, s) for s in (1, 2, 3)], src, tx_extra='fec = "16+4"')
    run.wait_delivered(timeout=60)
    for d in run.dirs:
        assert sha256(d / "object-17-1") == sha256(src)
        assert sorted(os.listdir(d)) == ["object-17-1"]
    tx = run.tx_status()
    rx = [run.rx_status(i) for i in range(3)]
    required, p = plain_required(tx, rx)
    ratio = wire_ratio(tx)
    print("data=%d repaired=%d parity=%d plain would need %.0f, loss=%r, wire %.3f" %
          (tx["sequenced"], tx["repaired"], tx["parity_sent"], required, p, ratio))
    print("receivers: %r" % [(r["parity_received"], r["fec_recovered"], r["naks_sent"]) for r in rx])
    assert all(r["delivered_objects"] == 1 and r["unrecoverable"] == 0 and r["bad_crc"] == 0 for r in rx)
    assert all(r["fec_recovered"] > 0 and r["fec_failed"] == 0 for r in rx)
    assert tx["parity_sent"] > 0
    # Plain repair needs 1.37-1.48x here; parity what the worst receiver
    # misses per block: about 1.2x at this loss.
    assert ratio <= 1.30
    assert tx["repaired"] + tx["parity_sent"] < 0.8 * required


def test_proactive_parity_repairs_without_naks(start_daemon, tmp_path, netns):
    """Two parity a block sent up front repair most of a receiver's 3% loss
    before any NAK: it NAKs far fewer sequences than it lost."""
    src = random_file(tmp_path / "image.bin", 2 << 20)
    run = Run(start_daemon, tmp_path, netns, ["netsim { loss = 0.03 seed = 7 }"], src,
              tx_extra='fec = "16+2"  fec-proactive = 2')
    run.wait_delivered(timeout=60)
    assert sha256(run.dirs[0] / "object-17-1") == sha256(src)
    tx = run.tx_status()
    rx = run.rx_status(0)
    lost = rx["netsim"][0]["lost"]
    print("lost=%d recovered=%d naks_sent=%d parity_sent=%d repaired=%d" %
          (lost, rx["fec_recovered"], rx["naks_sent"], tx["parity_sent"], tx["repaired"]))
    assert tx["parity_sent"] >= 2 * (tx["sequenced"] // 16)
    assert rx["fec_recovered"] > lost // 2
    assert rx["naks_sent"] < lost // 4
    # The counters are metrics, with their own HELP.
    metrics = subprocess.run([*netns.prefix(), "curl", "-s", "--max-time", "5",
                              "http://127.0.0.1:%d/metrics" % run.webs[1]], capture_output=True, text=True,
                             timeout=10).stdout
    assert 'chassisd_srm_fec_recovered_total{listener="r0",protocol="srm"} %d' % rx["fec_recovered"] in metrics
    assert "# HELP chassisd_srm_fec_recovered_total Datagrams rebuilt from parity" in metrics
    metrics = subprocess.run([*netns.prefix(), "curl", "-s", "--max-time", "5",
                              "http://127.0.0.1:%d/metrics" % run.webs[0]], capture_output=True, text=True,
                             timeout=10).stdout
    assert "# HELP chassisd_srm_parity_sent_total srm parity (FEC) datagrams sent" in metrics


def test_fec_off_sends_no_parity(start_daemon, tmp_path, netns):
    src = random_file(tmp_path / "image.bin", 1 << 20)
    run = Run(start_daemon, tmp_path, netns, ["netsim { loss = 0.05 seed = 3 }"], src)
    run.wait_delivered(timeout=60)
    assert sha256(run.dirs[0] / "object-17-1") == sha256(src)
    tx = run.tx_status()
    rx = run.rx_status(0)
    assert "parity_sent" not in tx and tx["repaired"] > 0
    assert rx["parity_received"] == 0 and rx["fec_recovered"] == 0
