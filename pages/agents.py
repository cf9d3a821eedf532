"""Agents: the catalogue of registered agents (ports, parameters, resources, timing, model cards)."""

from ui.agents_page import render_agents

render_agents()
