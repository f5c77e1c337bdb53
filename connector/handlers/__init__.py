"""What the Connector does for one identity, one module per kind of thing: plaintext in and
out, all end-to-end crypto in here, the records behind `connector.repositories`.

The wire formats (all JSON, sealed before they leave):
- template content, sealed with a fresh template key: `{"keys", "content"}`, the owner's
  public keys and the business content;
- a token for a template, sealed with a fresh token key: `{"type": "RelationshipTemplate",
  "templateId", "key"}`; its reference (token id + token key) is what a QR code carries;
- a relationship request's creation content, sealed with the template key (which only the
  owner and whoever got the reference hold): `{"keys", "content"}`, the requester's keys;
- the acceptance's response content, sealed with the relationship secret: `{"content"}`;
- a file: its bytes sealed with a fresh file key, its name and type sealed with the same key
  in `encryptedProperties`;
- a message: `connector.crypto.seal_message` over `{"content", "recipients", "attachments"}`,
  each attachment `{"id", "key"}`: the only way a file's key travels.

Events that business systems hear of (`MessageReceived`, `RelationshipRequested`,
`RelationshipChanged`) are announced in the same transaction as the change that caused them
(`LocalData.change()`), so each is announced once, also across crashes.
"""
