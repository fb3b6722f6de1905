"""CURVE keys for client sockets, from czmq certificate files (zfed.curve).

zfed-keygen writes NAME.key (public) and NAME.key_secret (both keys) in
czmq's ZPL format (zcert_save):

    #   ZeroMQ CURVE **Secret** Certificate
    metadata
    curve
        public-key = "<40 Z85 characters>"
        secret-key = "<40 Z85 characters>"

As czmq's zcert_load, load_cert(PATH) reads PATH_secret when it exists, else
PATH.  The broker's key (--server-key) is 40 Z85 characters, or the path of
its certificate (lib/transport/zfed_curve.c does the same).
"""

import os
import re

import zmq

Z85_KEY_LENGTH = 40
_ZERO_KEY = "0" * Z85_KEY_LENGTH
_PAIR_RE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s#]+)")


class CurveError(ValueError):
    pass


def _read_zpl(path):
    """The `curve` section's keys of a ZPL certificate file."""
    keys, section = {}, None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            # '#' starts a comment only where a line or an unquoted value
            # could start: Z85 keys may hold it.
            text = line.rstrip()
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            if not line[:1].isspace():
                section = text.strip()
                continue
            match = _PAIR_RE.match(text)
            if section == "curve" and match:
                value = match.group(2)
                if value[:1] in "\"'":
                    value = value[1:-1]
                keys[match.group(1)] = value
    return keys


def load_cert(path):
    """(public_key, secret_key or None) in Z85 from a certificate file."""
    for candidate in (path + "_secret", path):
        if os.path.isfile(candidate):
            try:
                keys = _read_zpl(candidate)
            except (OSError, UnicodeDecodeError) as failure:
                raise CurveError("cannot read certificate %s: %s" % (candidate, failure))
            public = keys.get("public-key", "")
            if len(public) != Z85_KEY_LENGTH:
                raise CurveError("certificate %s has no public key" % candidate)
            secret = keys.get("secret-key")
            if secret is not None and (len(secret) != Z85_KEY_LENGTH or secret == _ZERO_KEY):
                secret = None
            return public, secret
    raise CurveError("cannot load certificate %s" % path)


class ClientCurve:
    """Our certificate and the broker's public key, applied to each socket
    we open (zfed_curve_client_apply)."""

    def __init__(self, cert_file, server_key):
        if not cert_file or not server_key:
            raise CurveError("CURVE needs both a certificate (--curve-cert) and the broker's "
                             "public key (--server-key)")
        self.public, self.secret = load_cert(cert_file)
        if self.secret is None:
            raise CurveError("certificate %s has no secret key (give the _secret file)"
                             % cert_file)
        if len(server_key) == Z85_KEY_LENGTH and not os.path.exists(server_key):
            try:
                zmq.utils.z85.decode(server_key.encode("ascii"))
            except (ValueError, UnicodeEncodeError, KeyError):
                raise CurveError("server key is not a valid Z85 key")
            self.server = server_key
        else:
            self.server, _ = load_cert(server_key)

    def apply(self, socket):
        socket.curve_publickey = self.public.encode("ascii")
        socket.curve_secretkey = self.secret.encode("ascii")
        socket.curve_serverkey = self.server.encode("ascii")


def client_curve(cert_file, server_key):
    """ClientCurve, or None when neither is given."""
    if not cert_file and not server_key:
        return None
    return ClientCurve(cert_file, server_key)
