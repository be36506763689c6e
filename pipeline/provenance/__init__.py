"""Provenance: Content Credentials (C2PA) on generated files, signing identities, and the
training-data clearance of concept art. c2pa and cryptography are imported only when a
function that signs or reads runs. Lineage facts come from the tracker and backlot.lineage;
this package knows nothing of how a render is made. See docs/provenance.md."""

from backlot.provenance.clearance import (
    ClearanceError,
    ClearanceOverride,
    ClearanceReport,
    Rights,
    carried_override,
    check_training_clearance,
    clearance_report,
    get_rights,
    report_html,
    report_text,
    rights_history,
    set_rights,
)
from backlot.provenance.credentials import (
    CredentialReport,
    FileCheck,
    build_lineage,
    check_version,
    export_signed,
    read_credentials,
    sign_file,
    sign_for_delivery,
    sign_outputs,
    sign_version,
)
from backlot.provenance.signer import (
    LoadedSigner,
    SignerInfo,
    check_project_signer,
    describe_signer,
    init_signer,
    load_signer,
    set_policy,
    use_signer,
)

__all__ = [
    "ClearanceError", "ClearanceOverride", "ClearanceReport", "CredentialReport", "FileCheck", "LoadedSigner", "Rights", "SignerInfo",
    "build_lineage", "carried_override", "check_project_signer", "check_training_clearance", "check_version", "clearance_report",
    "describe_signer", "export_signed", "get_rights", "init_signer", "load_signer", "read_credentials", "report_html",
    "report_text", "rights_history", "set_policy", "set_rights", "sign_file", "sign_for_delivery", "sign_outputs", "sign_version",
    "use_signer",
]
