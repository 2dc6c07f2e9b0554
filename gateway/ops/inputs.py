"""The last good state of every file a worker starts from, kept by the supervisor.

A worker that dies is replaced by a new process, which must serve exactly what the others
serve: not the configuration ``serve`` read at start (the others may have reloaded since), and
not whatever the files hold at that moment (they may be broken, or the keys folder emptied).
So the supervisor reads the files as the workers do, every second, and keeps the last state
that loaded whole: the configuration, the signing keys' PEM text and the JWK Set files'
content (bytes, so the plan pickles to the new process). The new worker starts from that
snapshot, never from the disk, and never creates a key: only the first ``serve`` of an empty
keys folder does. Its watcher then follows the files like every other worker's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.auth.jwks import JwksError, JwksSource
from gateway.auth.keys import KeyFileError, KeyRing, read_key_files
from gateway.config import Config, ConfigError, load_config, missing_inputs
from gateway.ops.watch import Fingerprint, fingerprint, fingerprint_of_file

__all__ = ["Inputs", "LastGood", "read_inputs"]


@dataclass(frozen=True)
class Inputs:
    """Everything a worker starts from, read together and found good."""

    config: Config
    loaded_from: Fingerprint  # the files' state before they were read
    keys: tuple[tuple[str, bytes], ...]  # kid -> PEM
    jwks_files: tuple[tuple[str, bytes], ...]  # issuer -> JWK Set file content

    def keyring(self) -> KeyRing:
        return KeyRing.from_pems(dict(self.keys), self.config.tokens.keys)


def read_inputs(path: Path) -> Inputs:
    """Read and check every input; ``ConfigError``, ``KeyFileError`` or ``JwksError`` naming
    the first file that is not good."""
    before = fingerprint_of_file(path)
    config = load_config(path)
    missing = missing_inputs(config)
    if missing:
        raise ConfigError(missing)
    keys = read_key_files(config.tokens.keys)
    KeyRing.from_pems(keys, config.tokens.keys)  # every key must parse
    files: list[tuple[str, bytes]] = []
    for trusted in config.trusted_issuers:
        if trusted.jwks_file is not None:
            try:
                data = trusted.jwks_file.read_bytes()
            except OSError as error:
                raise JwksError(f"{trusted.jwks_file}: cannot read ({error.strerror})") from None
            JwksSource.from_bytes(trusted.issuer, data, trusted.jwks_file)
            files.append((trusted.issuer, data))
    return Inputs(
        config, (before, *fingerprint(config)[1:]), tuple(sorted(keys.items())), tuple(files)
    )


class LastGood:
    """The supervisor's copy of the last good inputs, refreshed when the files change."""

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self._tried = inputs.loaded_from  # a broken state is read once, not every second

    def refresh(self) -> bool:
        """Read the files again if they changed; True when a new good state was taken."""
        now = fingerprint(self.inputs.config)
        if now == self._tried:
            return False
        self._tried = now
        try:
            self.inputs = read_inputs(self.inputs.config.source)
        except (ConfigError, KeyFileError, JwksError, OSError):
            return False  # the workers log why, each at its own reload
        self._tried = self.inputs.loaded_from
        return True
