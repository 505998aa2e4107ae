#!/usr/bin/python3
"""gss-ntlmssp behind Samba ntlm_auth's helper line protocol.

Usage: gss_ntlmssp.py client DOMAIN\\user
       gss_ntlmssp.py server
Credentials come from the file named by NTLM_USER_FILE (DOMAIN:user:password
lines), as gss-ntlmssp reads them.

client (like ntlm_auth --helper-protocol=ntlmssp-client-1):
  "YR"          -> "YR <base64 type 1>"   (starts a new handshake)
  "TT <type 2>" -> "KK <base64 type 3>"
server (like ntlm_auth --helper-protocol=squid-2.5-ntlmssp):
  "YR <type 1>" -> "TT <base64 type 2>"
  "KK <type 3>" -> "AF DOMAIN\\user" or "NA <reason>"
Anything else -> "BH <reason>". One line out per line in, flushed.
"""
import base64
import sys

import gssapi

NTLMSSP = gssapi.OID.from_int_seq("1.3.6.1.4.1.311.2.2.10")


def answer(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def client(user):
    name = gssapi.Name(user, gssapi.NameType.user)
    creds = gssapi.Credentials(name=name, mechs=[NTLMSSP], usage="initiate")
    target = gssapi.Name("HTTP@isa01.fabrikam.com",
                         gssapi.NameType.hostbased_service)
    ctx = None
    for line in sys.stdin:
        verb, _, arg = line.strip().partition(" ")
        try:
            if verb == "YR":
                ctx = gssapi.SecurityContext(name=target, creds=creds,
                                             mech=NTLMSSP, usage="initiate")
                answer("YR " + base64.b64encode(ctx.step()).decode())
            elif verb == "TT" and ctx is not None:
                out = ctx.step(base64.b64decode(arg))
                answer("KK " + base64.b64encode(out).decode())
            else:
                answer("BH unexpected " + verb)
        except gssapi.exceptions.GSSError as e:
            answer("BH " + " ".join(str(e).split()))


def server():
    creds = gssapi.Credentials(mechs=[NTLMSSP], usage="accept")
    ctx = None
    for line in sys.stdin:
        verb, _, arg = line.strip().partition(" ")
        try:
            if verb == "YR":
                ctx = gssapi.SecurityContext(creds=creds, usage="accept")
                out = ctx.step(base64.b64decode(arg))
                answer("TT " + base64.b64encode(out).decode())
            elif verb == "KK" and ctx is not None:
                ctx.step(base64.b64decode(arg))
                answer("AF " + str(ctx.initiator_name) if ctx.complete
                       else "NA handshake not complete")
                ctx = None
            else:
                answer("BH unexpected " + verb)
        except gssapi.exceptions.GSSError as e:
            answer("NA " + " ".join(str(e).split()))
            ctx = None


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        client(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "server":
        server()
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
