"""Host-only tests of the test bed's own Python (frames, pcap, ports, scenario list, QEMU options).

    python3 -m unittest discover -s Tests/VM -p 'test_*.py'      (Tests/run does this)
"""

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import unittest

import testbed
import traffic


class FrameTests(unittest.TestCase):
    def test_ipv4_header_checksum_matches_a_worked_example(self):
        # A header whose checksum is well known (0xb861) from the RFC 1071 style worked example.
        hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
        self.assertEqual(traffic.checksum(hdr), 0xB861)

    def test_ipv4_packet_checksums_to_zero_when_verified(self):
        pkt = traffic.ipv4("10.1.2.3", "10.4.5.6", 17, b"x" * 11)
        self.assertEqual(traffic.checksum(pkt[:20]), 0)
        self.assertEqual(struct.unpack("!H", pkt[2:4])[0], 31)

    def test_udp_checksum_verifies_over_the_pseudo_header(self):
        pkt = traffic.udp("192.0.2.1", "192.0.2.2", 1234, 5678, b"hello")
        seg = pkt[20:]
        pseudo = pkt[12:16] + pkt[16:20] + struct.pack("!BBH", 0, 17, len(seg))
        self.assertEqual(traffic.checksum(pseudo + seg), 0)

    def test_icmp_echo_checksum_verifies(self):
        pkt = traffic.icmp_echo("192.0.2.1", "192.0.2.2", ident=7, seq=9, payload=b"abc")
        self.assertEqual(traffic.checksum(pkt[20:]), 0)
        self.assertEqual(pkt[20], 8)

    def test_short_frames_are_padded_to_sixty_bytes(self):
        f = traffic.ether("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", 0x88B5, b"hi")
        self.assertEqual(len(f), 60)
        self.assertEqual(f[12:14], b"\x88\xb5")

    def test_vlan_tag_carries_vid_and_priority(self):
        f = traffic.vlan("02:00:00:00:00:02", "02:00:00:00:00:01", 100, 0x0800, b"", pcp=5)
        self.assertEqual(f[12:14], b"\x81\x00")
        self.assertEqual(struct.unpack("!H", f[14:16])[0], (5 << 13) | 100)
        self.assertIn("vlan 100", traffic.describe(f))

    def test_arp_request_is_broadcast_who_has(self):
        f = traffic.arp_request("02:00:00:00:00:01", "192.0.2.1", "192.0.2.9")
        self.assertEqual(f[0:6], traffic.BROADCAST)
        self.assertEqual(struct.unpack("!H", f[20:22])[0], 1)
        self.assertEqual(f[38:42], socket.inet_aton("192.0.2.9"))

    def test_a_malformed_mac_is_refused_with_the_expected_form(self):
        with self.assertRaisesRegex(ValueError, "52:54:00:4d:50:01"):
            traffic.mac("52:54:00")


class PcapTests(unittest.TestCase):
    def test_frames_survive_a_pcap_round_trip(self):
        frames = [(1700000000.25, traffic.test_frame(b"\x02" * 6, b"\x04" * 6, i, size=60 + i)) for i in range(5)]
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.pcap")
            traffic.write_pcap(p, frames)
            back = traffic.read_pcap(p)
        self.assertEqual([f for _, f in back], [f for _, f in frames])
        self.assertAlmostEqual(back[0][0], 1700000000.25, places=5)

    def test_tshark_reads_our_pcap(self):
        tshark = shutil.which("tshark")
        if not tshark:
            self.skipTest("tshark is not installed (Tests/setup --vm installs it)")
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.pcap")
            traffic.write_pcap(p, [traffic.ether("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800,
                                                 traffic.udp("192.0.2.1", "192.0.2.2", 1000, 2000, b"z"))])
            out = subprocess.run([tshark, "-r", p, "-T", "fields", "-e", "udp.dstport", "-e", "ip.checksum.status"],
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.startswith("2000"), out.stdout)


class PortTests(unittest.TestCase):
    """A Port against a fake QEMU: a unix datagram socket bound where QEMU's would be."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mp-port-")
        self.qemu_path = os.path.join(self.dir, "n.qemu")
        self.fake = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.fake.bind(self.qemu_path)
        self.fake.settimeout(2)
        self.port = traffic.Port("n", os.path.join(self.dir, "n.host"), self.qemu_path, pace=0, send_timeout=0.3)

    def tearDown(self):
        self.port.close()
        self.fake.close()
        shutil.rmtree(self.dir)

    def test_sent_frames_reach_qemus_socket_in_order(self):
        frames = [traffic.test_frame(b"\x02" * 6, b"\x04" * 6, i) for i in range(5)]
        self.assertEqual(self.port.send(frames), 5)
        self.assertEqual([self.fake.recv(2048) for _ in frames], frames)

    def test_frames_from_the_nic_are_recorded_after_a_mark(self):
        self.fake.sendto(b"before" + bytes(54), self.port.host_path)
        self.port.wait_received((0, 0, 0), 1, timeout=2)
        mark = self.port.mark()
        self.fake.sendto(b"after" + bytes(55), self.port.host_path)
        got = self.port.wait_received(mark, 1, timeout=2)
        self.assertEqual([f[:5] for _, f in got], [b"after"])

    def test_waiting_for_a_frame_that_never_comes_returns_short(self):
        got = self.port.wait_received(self.port.mark(), 1, timeout=0.3)
        self.assertEqual(got, [])

    def test_frames_qemu_does_not_read_are_reported_undelivered(self):
        # QEMU not reading: fill the receiver's datagram queue until sends time out.
        frames = [traffic.test_frame(b"\x02" * 6, b"\x04" * 6, i) for i in range(64)]
        sent = self.port.send(frames)
        self.assertLess(sent, 64)
        self.assertIn("did not read", self.port.undelivered[0][2])

    def test_a_missing_qemu_socket_is_reported_not_blamed_on_the_driver(self):
        os.unlink(self.qemu_path)
        self.assertEqual(self.port.send([bytes(60)]), 0)
        self.assertIn("is the guest running", self.port.undelivered[0][2])


class ScenarioListTests(unittest.TestCase):
    def write(self, text):
        fd, path = tempfile.mkstemp(suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return path

    def test_the_real_list_parses_and_fills_every_placeholder(self):
        scenarios = testbed.load_scenarios(out_root="/R")
        self.assertGreater(len(scenarios), 5)
        for s in scenarios:
            self.assertNotRegex(s.command, r"\{[A-Za-z][\w:-]*\}", s.name)
        smoke = next(s for s in scenarios if s.name == "vfio-smoke")
        self.assertEqual(smoke.needs, "vfio-smoke")
        self.assertIn("--device 0000:01:00.0 --out /R/vfio-smoke", smoke.command)

    def test_the_list_has_self_tests_that_must_fail(self):
        self.assertTrue(any(s.expect == "fail" for s in testbed.load_scenarios()))

    def test_an_unknown_nic_names_the_line_and_the_choices(self):
        p = self.write("x | eth9 | pass | 10 | - | true\n")
        with self.assertRaisesRegex(testbed.ListError, r":1: unknown NIC 'eth9'; one of igb0"):
            testbed.load_scenarios(p)

    def test_a_short_line_is_refused(self):
        p = self.write("# comment\n\nx | igb0 | pass\n")
        with self.assertRaisesRegex(testbed.ListError, r":3: expected 6 columns"):
            testbed.load_scenarios(p)

    def test_an_unknown_placeholder_is_refused(self):
        p = self.write("x | igb0 | pass | 10 | - | run {device}\n")
        with self.assertRaisesRegex(testbed.ListError, r"unknown placeholder \{device\}"):
            testbed.load_scenarios(p)

    def test_a_duplicate_name_and_a_bad_expect_are_refused(self):
        with self.assertRaisesRegex(testbed.ListError, "listed twice"):
            testbed.load_scenarios(self.write("x | igb0 | pass | 1 | - | a\nx | igb0 | pass | 1 | - | b\n"))
        with self.assertRaisesRegex(testbed.ListError, "expect must be"):
            testbed.load_scenarios(self.write("x | igb0 | maybe | 1 | - | a\n"))

    def test_a_missing_host_script_is_refused(self):
        with self.assertRaisesRegex(testbed.ListError, "does not exist"):
            testbed.load_scenarios(self.write("x | igb0 | pass | 1 | nope.py | a\n"))


class QemuOptionTests(unittest.TestCase):
    def test_every_nic_uses_a_netdev_defined_before_it_and_a_fixed_bus(self):
        opts = testbed.qemu_options("/S")
        defined = set()
        nics = 0
        for flag, value in zip(opts, opts[1:]):
            if flag == "-netdev":
                defined.add(value.split(",")[1].removeprefix("id="))
            if flag == "-device" and ",netdev=" in value:
                nics += 1
                netdev = value.split("netdev=")[1].split(",")[0]
                self.assertIn(netdev, defined, value)
                self.assertIn("bus=", value)
                self.assertIn("mac=", value)
        self.assertEqual(nics, len(testbed.NICS))

    def test_the_iommu_comes_before_the_nics_and_virtio_goes_through_it(self):
        opts = " ".join(testbed.qemu_options("/S"))
        self.assertLess(opts.index("intel-iommu,intremap=on,caching-mode=on"), opts.index("-device igb"))
        self.assertIn("disable-legacy=on,iommu_platform=on", opts)
        self.assertIn("kernel-irqchip=split", opts)

    def test_addresses_and_macs_are_unique(self):
        self.assertEqual(len({n.address for n in testbed.NICS}), len(testbed.NICS))
        self.assertEqual(len({n.mac for n in testbed.NICS}), len(testbed.NICS))


class DifferentialTests(unittest.TestCase):
    """igbhost's comparison of QEMU's and the model's deliveries must see every kind of difference."""

    A = traffic.test_frame("02:00:00:00:00:0a", "02:00:00:00:00:01", 1)
    T = traffic.vlan("02:00:00:00:00:0a", "02:00:00:00:00:01", 5, traffic.ETH_TEST, b"tagged")

    @staticmethod
    def run_of(*frames):
        """A guest result: (frame bytes, queue, segments, vlan) per delivery."""
        return {"frames": [{"bytes": f.hex(), "queue": q, "segments": s, "vlan": v, "checksum": []} for f, q, s, v in frames]}

    def test_identical_runs_have_no_differences(self):
        import igbhost
        r = self.run_of((self.A, 1, [64], None))
        self.assertEqual(igbhost.compare(r, r, [self.A]), [])

    def test_another_queue_is_a_difference(self):
        import igbhost
        diffs = igbhost.compare(self.run_of((self.A, 1, [64], None)), self.run_of((self.A, 0, [64], None)), [self.A])
        self.assertEqual([d["frame"] for d in diffs], [0])

    def test_other_segments_a_missing_copy_and_other_bytes_are_differences(self):
        import igbhost
        qemu = self.run_of((self.A, 1, [42, 22], None), (self.A, 0, [64], None))
        self.assertEqual(len(igbhost.compare(qemu, self.run_of((self.A, 1, [64], None), (self.A, 0, [64], None)), [self.A])), 1)
        self.assertEqual(len(igbhost.compare(qemu, self.run_of((self.A, 1, [42, 22], None)), [self.A])), 1)
        changed = self.A[:-1] + b"\x01"
        diffs = igbhost.compare(self.run_of((self.A, 1, [64], None)), self.run_of((changed, 1, [64], None)), [self.A])
        self.assertTrue(any(d["frame"] is None and "nobody sent" in d["what"] for d in diffs), diffs)

    def test_a_stripped_tag_and_padding_are_the_same_frame(self):
        import igbhost
        body, vid, prio = igbhost.strip_vlan(self.T)
        self.assertEqual((vid, len(body)), (5, len(self.T) - 4))
        r = self.run_of((body, 0, [len(body)], 5))
        self.assertEqual(igbhost.compare(r, r, [self.T]), [])
        runt = traffic.ether("02:00:00:00:00:0a", "02:00:00:00:00:01", traffic.ETH_TEST, b"x", pad=False)
        padded = self.run_of((runt + bytes(60 - len(runt)), 0, [60], None))
        self.assertEqual(igbhost.compare(padded, padded, [runt]), [])

    def test_the_model_run_drops_device_only_options_and_keeps_the_queues(self):
        import igbhost
        args = igbhost.model_arguments("/b/VMScenarios igb-traffic --device 0000:01:00.0 --out /o --queue 02:00:00:00:00:0a/5 "
                                       "--lookahead 128 --interrupts --sleep-ms 10 --echo", "/m.pcap", "/mo", "52:54:00:00:00:01", "qemu")
        self.assertEqual(args[1:], ["igb-traffic", "--model", "--frames", "/m.pcap", "--fidelity", "qemu", "--mac",
                                    "52:54:00:00:00:01", "--out", "/mo", "--queue", "02:00:00:00:00:0a/5", "--lookahead", "128"])


class QMPTests(unittest.TestCase):
    """ctx.qmp / set_link / device_del against a stand-in QMP server on a unix socket."""

    def serve(self, replies):
        import json, socket, tempfile, threading
        d = tempfile.mkdtemp(prefix="miniport-qmp-")
        path = os.path.join(d, "qmp.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(4)
        self.seen = []

        def loop():
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                f = c.makefile("rwb")
                f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n'); f.flush()
                for line in f:
                    msg = json.loads(line)
                    self.seen.append(msg)
                    for r in replies(msg):
                        f.write(json.dumps(r).encode() + b"\n")
                    f.flush()
                c.close()
        threading.Thread(target=loop, daemon=True).start()
        self.addCleanup(srv.close)
        return path

    def context(self, path):
        s = testbed.Scenario("x", testbed.NIC_BY_NAME["igb-b"], "pass", 10, None, "true", 1)
        out = tempfile.mkdtemp(prefix="miniport-qmp-out-")
        return testbed.Context(s, out, {}, {}, qmp_socket=path)

    def test_set_link_names_the_nic_device_and_device_del_waits_for_its_event(self):
        def replies(msg):
            yield {"return": {}}
            if msg["execute"] == "device_del":
                yield {"event": "DEVICE_DELETED", "data": {"device": msg["arguments"]["id"]}}
        ctx = self.context(self.serve(replies))
        ctx.set_link(False)
        ctx.device_del()
        ctx.device_add()
        cmds = [(m["execute"], m.get("arguments")) for m in self.seen if m["execute"] != "qmp_capabilities"]
        self.assertEqual(cmds[0], ("set_link", {"name": "nic-igb-b", "up": False}))
        self.assertEqual(cmds[1], ("device_del", {"id": "nic-igb-b"}))
        self.assertEqual(cmds[2][0], "device_add")
        self.assertEqual(cmds[2][1]["id"], "nic-igb-b")
        self.assertEqual(cmds[2][1]["bus"], "rp5")
        self.assertEqual(cmds[2][1]["netdev"], "hub-igb-b")

    def test_a_qemu_error_is_a_failure_naming_it(self):
        def replies(msg):
            if msg["execute"] == "qmp_capabilities":
                yield {"return": {}}
            else:
                yield {"error": {"class": "DeviceNotFound", "desc": "Device 'nic-igb-b' not found"}}
        ctx = self.context(self.serve(replies))
        with self.assertRaisesRegex(testbed.Failure, "DeviceNotFound"):
            ctx.set_link(True)

    def test_every_nic_device_has_the_id_device_del_uses_and_qemu_has_a_monitor(self):
        opts = testbed.qemu_options("/S")
        self.assertIn("unix:/S/qmp.sock,server=on,wait=off", opts)
        for n in testbed.NICS:
            self.assertTrue(any(o.startswith(f"{n.model},id=nic-{n.name},") for o in opts), n.name)


if __name__ == "__main__":
    unittest.main()
