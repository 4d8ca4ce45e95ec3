"""Every command of the README's chapter map is exercised by a test.

The map's Command column is the reader's way into each chapter; a
command no test runs can rot unseen. Each one is listed here with the
tests that run it (as a process, or through its `main`), and this test
fails when the README names a command without one, when a listed test
no longer exists, or when that test does not mention the command.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# README command (module, then subcommand) -> the tests that run it
COMMAND_TESTS: dict[str, tuple[str, ...]] = {
    "ch03_gpu batching": (
        "ch03/test_batching_lab.py::"
        "test_cli_prints_the_comparison_and_writes_the_plot",),
    "ch03_gpu memory": (
        "ch03/test_memory_lab.py::test_memory_command_prints_the_table",),
    "ch03_gpu coldstart": (
        "ch03/test_coldstart.py::test_one_run_of_the_lab_prints_every_table",),
    "ch03_gpu size": (
        "ch03/test_sizing.py::test_the_table_and_the_levers_are_printed",),
    "ch03_gpu speculate": (
        "ch03/test_speculative.py::test_the_lab_prints_its_table",),
    "ch04_streaming": (
        "ch04/test_shutdown.py::test_sigterm_drains_and_exits",),
    "ch04_streaming.providers": (
        "ch04/test_providers.py::test_the_readme_holds_the_table_the"
        "_command_prints",
        "ch04/test_providers.py::test_the_module_runs_as_a_command"),
    "ch05_protocols grpc": (
        "ch05/test_grpc_process.py::test_serves_then_drains_on_sigterm",),
    "ch05_protocols ws": (
        "ch05/test_commands.py::test_ws_serves_base64_beside_deepgram",),
    "ch05_protocols rtc": (
        "ch05/test_webrtc.py::test_sigterm_finishes_the_open_utterance"
        "_then_exits_0",),
    "ch05_protocols wt": (
        "ch05/test_wt_command.py::test_the_client_command_prints_the"
        "_fixtures_finals",),
    "ch05_protocols.stall": (
        "ch05/test_stall.py::test_a_short_stall_costs_latency_buffered_and"
        "_words_dropped",
        "ch05/test_stall.py::test_bad_flags_stop_the_lab"),
    "ch05_protocols.choose": (
        "ch05/test_choose.py::test_the_command_prints_the_choice_and_the_rest",),
    "ch06_pipeline": (
        "ch06/test_main.py::test_the_service_serves_both_transports_and"
        "_drains",),
    "examples.loadgen": (
        "examples/test_loadgen.py::test_the_command_at_capacity_writes"
        "_records_summary_and_plot",),
    "ch07_api": (
        "ch07/test_main.py::test_the_service_serves_the_sdk_and_stops"
        "_cleanly",),
    "ch08_metering serve": (
        "ch08/test_serve.py::test_sigterm_drains_streams_and_writes_their"
        "_usage",),
    "ch08_metering invoice": (
        "ch08/test_invoice.py::test_the_invoice_command_prints_the_preview"
        "_table",),
    "ch08_metering explain": (
        "ch08/test_invoice.py::test_explain_prints_the_audit_trail_of_a"
        "_line",),
    "ch08_metering deliver": (
        "ch08/test_delivery.py::test_the_cli_dry_run_prints_the_calls_it"
        "_would_make",),
    "ch11_slo burn-rates": (
        "ch11/test_cli.py::test_burn_rates_prints_the_workbook_table",),
    "ch11_slo rules": (
        "ch11/test_cli.py::test_rules_writes_the_committed_file",),
    "ch11_slo validate": (
        "ch11/test_sloth_cli.py::test_validate_reports_every_file_and"
        "_writes_nothing",),
    "ch11_slo report": (
        "ch11/test_report.py::test_a_healthy_run_meets_every_voice_ai"
        "_target",),
    "ch11_slo scenario": ("test_tour.py::test_tour_runs_as_a_program",),
    "ch11_slo accuracy-budget": (
        "ch11/test_accuracy_budget.py::test_the_command_runs_as_a_program",),
    "ch11_slo target-cost": (
        "ch11/test_target_cost.py::test_the_command_runs_as_a_program",),
    "examples.reconnecting_client": (
        "examples/test_reconnecting_client.py::test_the_command_writes_a"
        "_record_per_connection",),
    "ch08_metering simulate": (
        "ch08/test_synthetic.py::test_simulate_writes_the_month_once_and"
        "_the_invoices_show_dollars",),
    "ch08_metering stripe-invoice": (
        "ch08/test_stripe_billing.py::test_stripe_invoice_command_prints"
        "_both_invoices",),
    "ch09_security serve": (
        "ch09/test_serve.py::test_keys_made_and_revoked_by_command_govern"
        "_the_service",),
    "ch09_security signing-keys": (
        "ch09/test_signing_keys_cli.py::test_rotate_then_retire_the_old"
        "_key",),
    "ch09_security keys": (
        "ch09/test_keys_cli.py::test_create_shows_the_key_once_and_list"
        "_never",),
    "ch09_security audio": (
        "ch09/test_serve_retention.py::test_serve_keeps_only_what_was"
        "_asked_and_audio_exports_it",),
    "ch09_security certs": (
        "ch09/test_serve.py::test_certificates_from_certs_serve_every_port"
        "_over_tls",
        "ch09/test_certs_cli.py::test_certs_writes_a_ca_a_server_and_a"
        "_client_certificate"),
    "ch10_compliance serve": (
        "ch10/test_serve.py::test_a_governed_stream_is_audited_kept_in"
        "_region_and_verified",),
    "ch10_compliance keys": (
        "ch10/test_keys_cli.py::test_create_roll_revoke_are_audited",),
    "ch10_compliance audit": (
        "ch10/test_audit_cli.py::test_a_tampered_log_fails_verify_with_the"
        "_position",
        "ch10/test_audit_cli.py::test_a_proof_is_checked_by_a_third_party"),
    "ch10_compliance subject": (
        "ch10/test_subjects_cli.py::test_erase_prints_a_receipt_the_public"
        "_key_verifies",),
    "ch10_compliance retention": (
        "ch10/test_retention_cli.py::test_a_run_deletes_what_is_due_and"
        "_says_under_which_basis",),
    "ch10_compliance matrix": (
        "ch10/test_matrix.py::test_the_command_prints_markdown_and_writes"
        "_html",),
    "ch10_compliance evidence": (
        "ch10/test_evidence.py::test_the_command_runs_every_check_and"
        "_writes_the_report",),
    "ch11_slo jitter": (
        "ch11/test_jitter.py::test_the_command_runs_as_a_program",),
    "ch12_scaling serve": (
        "ch12/test_serve.py::test_the_deepgram_sdk_hears_fixtures_through"
        "_the_proxy",),
    "ch12_scaling autoscale-sim": (
        "ch12/test_autoscale_sim.py::test_the_command_runs_as_a_module",),
    "ch12_scaling spot-sim": (
        "ch12/test_spot_sim.py::test_the_command_prints_and_writes_the"
        "_figures",),
    "ch12_scaling plan": (
        "ch12/test_plan.py::test_the_command_runs_on_the_repositorys_own"
        "_figures",),
    "examples.routing_comparison": (
        "examples/test_routing_comparison.py::test_the_command_compares_a"
        "_router_on_a_short_load",),
}


# subcommands whose module goes by another name (the dispatcher's map)
RUN_BY = {"speculate": "speculative_lab"}


def readme_commands() -> set[str]:
    """`python -m MODULE [SUB]` of the chapter map's Command column;
    `... SUB` continues the module before it."""
    found: set[str] = set()
    for row in (REPO / "README.md").read_text().splitlines():
        if not re.match(r"\| \d+ ", row):
            continue
        module = ""
        for code in re.findall(r"`([^`]+)`", row.split("|")[4]):
            words = code.split()
            if words[:2] == ["python", "-m"]:
                module, rest = words[2], words[3:]
            elif words[0] == "...":
                rest = words[1:]
            else:
                continue
            sub = rest[0] if rest and not rest[0].startswith("-") and (
                rest[0].islower()) else ""
            found.add(f"{module} {sub}".strip())
    return found


def test_the_map_is_read() -> None:
    commands = readme_commands()
    assert "ch03_gpu size" in commands and "ch04_streaming" in commands
    assert len(commands) >= 20


def test_every_readme_command_has_a_test_and_every_test_a_command(
) -> None:
    assert readme_commands() == set(COMMAND_TESTS)


def function_source(node_id: str) -> str | None:
    path, name = node_id.split("::")
    source = (REPO / "tests" / path).read_text()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name == name):
            return ast.get_source_segment(source, node)
    return None


def test_each_listed_test_exists_and_runs_its_command() -> None:
    for command, tests in COMMAND_TESTS.items():
        word = command.split()[-1].split(".")[-1]
        word = RUN_BY.get(word, word)
        module = (REPO / "tests" / tests[0].split("::")[0]).read_text()
        for node_id in tests:
            body = function_source(node_id)
            assert body is not None, node_id
            # the command's last word in the test, or in the test
            # module, which imports the command's `main` by that name
            assert word in body or word in module, (command, node_id)
