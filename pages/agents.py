"""Agents: the catalogue of registered agents (ports, parameters, resources, timing, model cards)."""

from ui.agents_page import render_agents
from ui.shell import enter_page

enter_page(render_agents)
