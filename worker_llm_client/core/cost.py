"""What a model request costs, from the profile's pricing (USD per million tokens). Pure.

Input tokens are billed at the input rate, the cached part of them at the cached rate (the input
rate when the profile gives none); output and thinking tokens at the output rate. Above the
long-context threshold (prompt tokens) the whole request is billed at the long-context rates.
"""

from __future__ import annotations

from worker_llm_client.execution_models import Pricing, Usage

PER_TOKENS = 1_000_000
COST_DIGITS = 10  # a one-token request at $0.01/MTok costs 1e-8 USD: kept; float noise is not


def request_cost(usage: Usage, pricing: Pricing | None) -> float | None:
    """The cost of one request in USD; None when the profile has no pricing."""
    if pricing is None:
        return None
    tier = pricing.long_context
    above = tier is not None and usage.prompt_tokens > tier.threshold_tokens
    input_rate = tier.input_per_mtok if tier is not None and above else pricing.input_per_mtok
    output_rate = tier.output_per_mtok if tier is not None and above else pricing.output_per_mtok
    cached_rate = input_rate if pricing.cached_input_per_mtok is None else pricing.cached_input_per_mtok
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    billed = (
        (usage.prompt_tokens - cached) * input_rate
        + cached * cached_rate
        + (usage.output_tokens + usage.thoughts_tokens) * output_rate
    )
    return round(billed / PER_TOKENS, COST_DIGITS)


def add_cost(total: float | None, cost: float | None) -> float | None:
    """Costs summed over requests; None only while nothing was priced."""
    if cost is None:
        return total
    return round((total or 0.0) + cost, COST_DIGITS)
