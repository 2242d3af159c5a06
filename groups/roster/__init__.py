"""The roster (花名册): grids, household groups, households, members and staff, read from and written to YAML.

:func:`parse_roster` checks a file completely and reports every problem at once, each naming its place in
the file (``grids[0].groups[1].head: m9 is not a member of group g2``). :func:`import_roster` brings the
database in line with a checked roster in the caller's transaction: keys are stable identities, so a
re-import updates in place, keeps invite tokens, bind codes, Telegram links and history, and deactivates
(never deletes) what the file no longer names.
"""

from groups.roster.export import export_roster, roster_document
from groups.roster.parse import load_sample_village, parse_roster
from groups.roster.spec import (
    OPTIONAL_STAFF_FIELDS,
    STAFF_FIELDS,
    GridSpec,
    GroupSpec,
    HouseholdSpec,
    MemberSpec,
    Roster,
    RosterError,
    RosterProblem,
    StaffSpec,
)
from groups.roster.sync import ImportSummary, KindCounts, import_roster, new_bind_code, new_invite_token

__all__ = [
    "OPTIONAL_STAFF_FIELDS",
    "STAFF_FIELDS",
    "GridSpec",
    "GroupSpec",
    "HouseholdSpec",
    "ImportSummary",
    "KindCounts",
    "MemberSpec",
    "Roster",
    "RosterError",
    "RosterProblem",
    "StaffSpec",
    "export_roster",
    "import_roster",
    "load_sample_village",
    "new_bind_code",
    "new_invite_token",
    "parse_roster",
    "roster_document",
]
