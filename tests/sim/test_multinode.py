"""Multi-node workers: node 0 is ready only when every rank joined at --dist-init-addr."""

from __future__ import annotations

from tests.sim.conftest import HOST, StartSim, free_ports, wait_healthy, wait_until


def test_leader_waits_for_followers(start_sim: StartSim) -> None:
    dist_port, p0, p1 = free_ports(3)
    common = ["--model-path", "m", "--nnodes", "2", "--dist-init-addr", f"{HOST}:{dist_port}"]
    leader = start_sim(*common, "--node-rank", "0", port=p0, wait=False)
    wait_until(lambda: "waiting for 1 more node" in leader.log, leader, what="leader listening")
    assert leader.get("/health").status_code == 503
    follower = start_sim(*common, "--node-rank", "1", port=p1)  # waits until healthy
    wait_healthy(leader)
    assert follower.get("/health_generate").status_code == 200
    assert follower.post("/generate", {"text": "a"}).status_code == 404  # health only
    assert leader.post("/generate", {"text": "a"}).status_code == 200
    # A third process claiming rank 1 is refused and exits with an error.
    dup = start_sim(*common, "--node-rank", "1", wait=False)
    assert dup.popen.wait(timeout=15) == 1
    assert "two nodes were started with --node-rank 1" in dup.log
    # When a rank dies the job dies, as a distributed SGLang worker would.
    follower.stop()
    assert leader.popen.wait(timeout=15) == 1
    assert "node rank 1 left the job" in leader.log


def test_nnodes_without_dist_init_addr_fails(start_sim: StartSim) -> None:
    sim = start_sim("--nnodes", "2", wait=False)
    assert sim.popen.wait(timeout=15) == 1
    assert "--nnodes 2 needs --dist-init-addr" in sim.log
