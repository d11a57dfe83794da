"""Placeholder: filled in by the cases pages' work."""

from __future__ import annotations

from fastapi import APIRouter

cases_router = APIRouter()
