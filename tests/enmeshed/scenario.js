// Drives the published Enmeshed client (@nmshd/transport, unmodified, LokiJS in memory)
// against a backbone through the core flows of issue 18, one step at a time.
//
// Usage: node scenario.js <baseUrl> <clientId> <clientSecret> [addressDomain]
// Prints one JSON line per step: {"step", "ok", "ms", "error"?} (and {"info"} lines);
// stops at the first failing step and exits 1. The pytest test (tests/integration/test_enmeshed_client.py)
// reads these lines, so a failure names the step and the client's own error.
"use strict";

const { EventEmitter2EventBus } = require("@js-soft/ts-utils");
const { Serializable } = require("@js-soft/ts-serval");
const { LokiJsConnection } = require("@js-soft/docdb-access-loki");
const { CoreDate } = require("@nmshd/core-types");
const { CoreBuffer } = require("@nmshd/crypto");
const transportLib = require("@nmshd/transport");

const { Transport, AccountController, TokenContentRelationshipTemplate, RelationshipStatus } = transportLib;

const [baseUrl, clientId, clientSecret, addressDomain = "localhost"] = process.argv.slice(2);
if (!baseUrl || !clientId || !clientSecret) {
    console.error("usage: node scenario.js <baseUrl> <clientId> <clientSecret> [addressDomain]");
    process.exit(2);
}

const config = {
    baseUrl,
    platformClientId: clientId,
    platformClientSecret: clientSecret,
    addressGenerationHostnameOverride: addressDomain,
    supportedIdentityVersion: 1,
    datawalletEnabled: true, // as the apps run
    debug: false
};

// The transport logs through this factory; errors only, so the step lines stay readable.
const quietLogger = {
    getLogger: () => {
        const noop = () => undefined;
        return { trace: noop, debug: noop, info: noop, warn: noop, log: noop, fatal: console.error, error: process.env.SCENARIO_VERBOSE ? console.error : noop };
    }
};

function fail(message) {
    throw new Error(message);
}

function expectEqual(actual, expected, what) {
    if (actual !== expected) fail(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

const started = Date.now();
async function step(name, fn) {
    const t0 = Date.now();
    try {
        const value = await fn();
        console.log(JSON.stringify({ step: name, ok: true, ms: Date.now() - t0 }));
        return value;
    } catch (e) {
        const detail = e && (e.stack || e.message || String(e));
        const code = e && e.code;
        console.log(JSON.stringify({ step: name, ok: false, ms: Date.now() - t0, code, error: String(detail).slice(0, 4000) }));
        process.exit(1);
    }
}

// A message is delivered through the recipient's mailbox; the worker may need a moment.
async function syncUntil(account, predicate, what, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        await account.syncEverything();
        const found = await predicate();
        if (found) return found;
        if (Date.now() > deadline) fail(`not seen after sync within ${timeoutMs} ms: ${what}`);
        await new Promise((r) => setTimeout(r, 300));
    }
}

async function main() {
    const eventBus = new EventEmitter2EventBus(() => undefined);
    const transport = new Transport(config, eventBus, quietLogger);
    await transport.init();
    const connection = new LokiJsConnection(".", undefined, { autoload: false, autosave: false, persistenceMethod: "memory" });

    let n = 0;
    const newAccount = async (sharedSecret) => {
        const db = await connection.getDatabase(`account${n++}`);
        const account = new AccountController(transport, db, transport.config);
        await account.init(sharedSecret);
        return { account, db };
    };

    const { account: a } = await step("create account A (datawallet enabled)", () => newAccount());
    const { account: b } = await step("create account B (datawallet enabled)", () => newAccount());
    // Who is who, for the test's own checks on the backbone (e.g. no sync errors reported).
    console.log(JSON.stringify({ info: { addresses: [a.identity.address.toString(), b.identity.address.toString()] } }));
    await step("sync A and B", async () => {
        await a.syncEverything();
        await b.syncEverything();
    });

    const template = await step("A creates a relationship template", () =>
        a.relationshipTemplates.sendRelationshipTemplate({
            content: Serializable.fromAny({ greeting: "Hello from A" }),
            expiresAt: CoreDate.utc().add({ minutes: 10 }),
            maxNumberOfAllocations: 1
        })
    );
    const token = await step("A creates a token for the template", () =>
        a.tokens.sendToken({
            content: TokenContentRelationshipTemplate.from({ templateId: template.id, secretKey: template.secretKey }),
            expiresAt: CoreDate.utc().add({ minutes: 10 }),
            ephemeral: false
        })
    );
    const tokenRef = token.toTokenReference(baseUrl).truncate();
    const templateRef = template.toRelationshipTemplateReference(baseUrl).truncate();

    const loadedToken = await step("B loads the token by truncated reference", () =>
        b.tokens.loadPeerTokenByReference(transportLib.TokenReference.from(tokenRef), true)
    );
    await step("B loads the template through the token's content", async () => {
        if (!(loadedToken.content instanceof TokenContentRelationshipTemplate)) fail("token content is not a template reference");
        const t = await b.relationshipTemplates.loadPeerRelationshipTemplateByTokenContent(loadedToken.content);
        expectEqual(t.id.toString(), template.id.toString(), "template id");
    });
    const peerTemplate = await step("B loads the template by truncated reference", async () => {
        const t = await b.relationshipTemplates.loadPeerRelationshipTemplateByReference(transportLib.RelationshipTemplateReference.from(templateRef));
        expectEqual(t.content.toJSON().greeting, "Hello from A", "template content");
        return t;
    });

    const pending = await step("B requests a relationship", async () => {
        const canSend = await b.relationships.canSendRelationship({ template: peerTemplate, creationContent: Serializable.fromAny({ hi: "B" }) });
        if (canSend.isError) fail(`canSendRelationship: ${canSend.error.code} ${canSend.error.message}`);
        return b.relationships.sendRelationship({ template: peerTemplate, creationContent: Serializable.fromAny({ hi: "B" }) });
    });
    expectEqual(pending.status, RelationshipStatus.Pending, "B's new relationship");

    await step("A sees the request Pending after a sync", () =>
        syncUntil(a, async () => {
            const r = await a.relationships.getRelationship(pending.id);
            return r && r.status === RelationshipStatus.Pending ? r : undefined;
        }, "pending relationship at A")
    );
    await step("A accepts", async () => {
        const r = await a.relationships.accept(pending.id);
        expectEqual(r.status, RelationshipStatus.Active, "A's relationship after accept");
    });
    await step("B sees it Active after a sync", () =>
        syncUntil(b, async () => {
            const r = await b.relationships.getRelationship(pending.id);
            return r && r.status === RelationshipStatus.Active ? r : undefined;
        }, "active relationship at B")
    );

    const exchange = async (from, to, label) => {
        const bytes = CoreBuffer.fromUtf8(`file from ${label} ${"x".repeat(1000)} +/=`);
        const file = await step(`${label}: uploads a file`, () =>
            from.files.sendFile({
                buffer: bytes,
                filename: `${label}.txt`,
                mimetype: "text/plain",
                title: `${label}'s file`,
                expiresAt: CoreDate.utc().add({ minutes: 10 })
            })
        );
        const sent = await step(`${label}: sends a message with the file attached`, () =>
            from.messages.sendMessage({
                recipients: [to.identity.address],
                content: Serializable.fromAny({ text: `hello from ${label}` }),
                attachments: [file]
            })
        );
        const received = await step(`${label}: the recipient receives it after a sync`, () =>
            syncUntil(to, async () => to.messages.getMessage(sent.id), `message ${sent.id} at the recipient`)
        );
        await step(`${label}: the recipient decrypts the message`, async () => {
            expectEqual(received.content.toJSON().text, `hello from ${label}`, "message text");
            expectEqual(received.attachments.length, 1, "attachment count");
        });
        await step(`${label}: the recipient downloads and decrypts the attachment`, async () => {
            const attachmentId = received.attachments[0];
            const content = await to.files.downloadFileContent(attachmentId);
            expectEqual(content.toUtf8(), bytes.toUtf8(), "file content");
        });
    };
    await exchange(a, b, "A to B");
    await exchange(b, a, "B to A");

    const protectedToken = await step("A creates a password-protected token", () =>
        a.tokens.sendToken({
            content: Serializable.fromAny({ secret: "only with the password" }),
            expiresAt: CoreDate.utc().add({ minutes: 10 }),
            ephemeral: true,
            passwordProtection: { password: "correct horse", passwordType: "pw" }
        })
    );
    const protectedRef = transportLib.TokenReference.from(protectedToken.toTokenReference(baseUrl).truncate());
    await step("B loads it with the right password", async () => {
        const t = await b.tokens.loadPeerTokenByReference(protectedRef, true, "correct horse");
        expectEqual(t.content.toJSON().secret, "only with the password", "token content");
    });
    await step("B is refused with a wrong password", async () => {
        let refused = false;
        try {
            await b.tokens.loadPeerTokenByReference(protectedRef, true, "wrong password");
        } catch (e) {
            refused = true;
        }
        if (!refused) fail("a wrong password loaded the token");
    });

    const device = await step("A creates a second device", () => a.devices.sendDevice({ name: "second device", isAdmin: true }));
    const sharedSecret = await step("A gets the device's shared secret", async () => {
        await a.syncDatawallet();
        return a.devices.getSharedSecret(device.id);
    });
    const { account: a2, db: a2db } = await step("the second device is onboarded (its password changed by the client)", () => newAccount(sharedSecret));
    await step("the second device syncs", () => a2.syncEverything());
    await step("the second device logs in again with its new password", async () => {
        // A fresh AccountController on the same local store: no cached token, the saved
        // (changed) password is all it has.
        const again = new AccountController(transport, a2db, transport.config);
        await again.init();
        await again.syncEverything();
        const relationships = await again.relationships.getRelationships();
        expectEqual(relationships.length, 1, "relationships the second device sees");
    });

    console.log(JSON.stringify({ step: "done", ok: true, ms: Date.now() - started }));
    // The client keeps HTTP connections and timers alive: end here, everything is said.
    process.exit(0);
}

main().catch((e) => {
    console.log(JSON.stringify({ step: "driver", ok: false, error: String((e && e.stack) || e) }));
    process.exit(1);
});
