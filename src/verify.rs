//! The exact scheme on EVM, checked locally: a payment against a route's offers and the clock.
//!
//! Every check of the scheme has its own [`Reason`], so a client learns precisely what it got wrong.
//! The checks run cheapest first and the signature last: recovering a public key is the only
//! expensive step, and a payment that fails a string comparison should not cost us one.
//!
//! What cannot be known here without a chain (balance, whether the nonce was used on chain, whether
//! a contract wallet accepts a signature) is left to settlement; signatures that are not 65-byte
//! ECDSA are handed to the facilitator's `/verify` instead of being refused when longer, and a
//! 65-byte one made by another key than `from`'s, or one of at most 65 bytes that no key's can be,
//! comes back with the question to put to a wallet contract at `from` ([`Verified::wallet_check`]).

use crate::config::{Offer, Route};
use crate::evm::{self, Address, EvmError, Signature, TransferWithAuthorization, U256};
use crate::networks;
use crate::reason::{Reason, Refusal};
use crate::x402::Payment;

/// Clock skew we tolerate between a client and us, in seconds, when bounding how long an
/// authorization may stay valid. The reference clients backdate `validAfter` by the same amount.
pub const CLOCK_SKEW_SECONDS: u64 = 600;
/// How long an authorization may stay valid whatever the terms' `maxTimeoutSeconds` says: the
/// official Go client signs every payment for an hour, and the official Python client does so
/// when the terms give no time. A longer validity only leaves more time to settle; the bound
/// keeps how long a payment's nonce must be remembered.
pub const CLIENT_VALIDITY_SECONDS: u64 = 3600;

/// How the local check ended when it did not refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'c> {
    pub offer: &'c Offer,
    pub payer: Address,
    pub nonce: [u8; 32],
    pub valid_before: u64,
    /// `false` when the signature is longer than 65 bytes and only the facilitator can judge it
    /// (ERC-1271 / ERC-6492 smart wallets), or when it is not `from`'s key's
    /// ([`Verified::wallet_check`]). Everything else was checked.
    pub signature_checked: bool,
    /// A 65-byte signature made by some other key than `from`'s, or at most 65 bytes no key's
    /// signature can be (v 0 or 1, a high s, shorter): only a wallet contract at `from` (ERC-1271,
    /// a Safe) can vouch for it. Its question, and the refusal if the contract does not answer yes
    /// (or `from` has no code).
    pub wallet_check: Option<Box<WalletCheck>>,
}

/// What to ask the contract at a payment's `from`: whether `signature` is its signature over
/// `digest` (the EIP-712 digest of the authorization, as USDC asks it when it settles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletCheck {
    pub digest: [u8; 32],
    /// The signature as sent: a key's 65 bytes, or at most 65 that no key's signature can be.
    pub signature: Vec<u8>,
    /// The answer when the contract says no: what was found locally (a signer mismatch, or a
    /// signature no key can have made).
    pub refusal: Refusal,
}

/// A payment's signature of at most 65 bytes, as [`verify`] reads it.
enum Signed {
    /// A key's signature, in the form USDC's ECRecover takes.
    Key(Signature),
    /// Bytes no key's signature can be, which only a wallet contract at `from` may accept, and
    /// the refusal that stands if it does not.
    ByWallet(Vec<u8>, Refusal),
}

impl Signed {
    /// The signature's bytes, as sent.
    fn bytes(&self) -> Vec<u8> {
        match self {
            Signed::Key(key) => key.to_bytes().to_vec(),
            Signed::ByWallet(bytes, _) => bytes.clone(),
        }
    }
}

/// Checks `payment` against `route` at time `now` (unix seconds). `settle_within` is how many
/// seconds we may need before the authorization's `validBefore` to settle it.
pub fn verify<'c>(
    payment: &Payment,
    route: &'c Route,
    now: u64,
    settle_within: u64,
) -> Result<Verified<'c>, Refusal> {
    if payment.scheme != "exact" {
        return Err(Refusal::new(
            Reason::UnsupportedScheme,
            format!("scheme {:?}", payment.scheme),
        ));
    }
    let network = networks::parse_network(&payment.network).ok_or_else(|| {
        Refusal::new(
            Reason::NetworkMismatch,
            format!("network {:?}", payment.network),
        )
    })?;
    // v1 names the network by its legacy name and v2 by CAIP-2; each must use its own form.
    let wrote_right_form = match payment.version {
        1 => network.v1_name == Some(payment.network.as_str()),
        _ => payment.network.starts_with("eip155:"),
    };
    let on_network: Vec<&Offer> = route
        .offers
        .iter()
        .filter(|o| o.asset.network.chain_id == network.chain_id)
        .collect();
    if on_network.is_empty() || !wrote_right_form {
        return Err(Refusal::new(
            Reason::NetworkMismatch,
            format!("network {:?} is not offered here", payment.network),
        ));
    }
    // A v1 payment only where v1 is offered: the facilitator must settle v1 on that network
    // (`/supported`), and the 402's v1 body offers nothing else.
    let on_network: Vec<&Offer> = match payment.version {
        1 => on_network.into_iter().filter(|o| o.v1_enabled).collect(),
        _ => on_network,
    };
    if on_network.is_empty() {
        return Err(Refusal::new(
            Reason::NetworkMismatch,
            format!(
                "x402 v1 payments on {:?} are not taken here: the facilitator settles only v2 \
                 there; pay with PAYMENT-SIGNATURE (v2)",
                payment.network
            ),
        ));
    }

    let auth = &payment.payload.authorization;
    let from = address("authorization.from", &auth.from)?;
    let to = match on_network.iter().find(|o| o.requirements.pay_to == auth.to) {
        Some(o) => o.pay_to,
        None => address("authorization.to", &auth.to)?,
    };
    let value = number("authorization.value", &auth.value)?;
    let valid_after = number("authorization.validAfter", &auth.valid_after)?;
    let valid_before = number("authorization.validBefore", &auth.valid_before)?;
    let nonce = evm::parse_bytes32(&auth.nonce).map_err(|_| {
        Refusal::new(
            Reason::InvalidNonce,
            format!("nonce {:?}", truncate(&auth.nonce)),
        )
    })?;
    let signature = match Signature::parse_hex(&payment.payload.signature) {
        Ok(sig) => Some(Signed::Key(sig)),
        Err(EvmError::SignatureLength(n)) if n > 65 => None,
        // No key's signature that USDC would take (its ECRecover wants v 27 or 28 and a low s,
        // in 65 bytes), but USDC hands any bytes to a wallet contract at `from`, which may accept
        // them: a Safe's v = 1 (a hash its owner approved on chain), an empty signature (a message
        // the Safe signed on chain), a wallet's own shorter form. v above 28 (a Safe owner's
        // `eth_sign`, v + 4) is not among them: the official facilitator cannot settle it (its
        // signature parser throws on any v but 0, 1, 27 and 28); nor a v of 27 or 28 with an r
        // or s out of the curve's range, which it refuses too. (With v 0 or 1, r and s are no
        // curve values: a Safe puts an owner's address and an offset there, or nothing.)
        Err(e @ (EvmError::BadV(0 | 1) | EvmError::HighS | EvmError::SignatureLength(_))) => {
            // Its digits were checked by `parse_hex`.
            let bytes = evm::hex_bytes(&payment.payload.signature).unwrap_or_default();
            Some(Signed::ByWallet(
                bytes,
                Refusal::new(Reason::InvalidSignature, e.to_string()),
            ))
        }
        Err(e) => return Err(Refusal::new(Reason::InvalidSignature, e.to_string())),
    };

    let candidates: Vec<&Offer> = match &payment.accepted {
        Some(accepted) => {
            let written = on_network
                .iter()
                .find(|o| o.requirements.asset == accepted.asset);
            let offer = match written {
                Some(o) => o,
                None => {
                    let asset = address("accepted.asset", &accepted.asset)?;
                    on_network
                        .iter()
                        .find(|o| o.asset.address == asset)
                        .ok_or_else(|| {
                            Refusal::new(Reason::AssetMismatch, format!("asset {}", accepted.asset))
                        })?
                }
            };
            check_accepted(accepted, offer)?;
            vec![offer]
        }
        // v1 does not echo the terms: it names only scheme and network. With several tokens on
        // that network, the one whose EIP-712 domain the signature recovers under is the one paid.
        None => on_network,
    };

    let mut last = None;
    // The first offer under which the signature recovered to another key than `from`'s: a wallet
    // contract may still have made it, if no offer's domain gives `from` itself.
    let mut for_wallet: Option<Verified<'c>> = None;
    for offer in candidates {
        match check_authorization(
            offer,
            from,
            to,
            value,
            valid_after,
            valid_before,
            now,
            settle_within,
        ) {
            Ok(valid_before) => {
                let Some(sig) = &signature else {
                    return Ok(Verified {
                        offer,
                        payer: from,
                        nonce,
                        valid_before,
                        signature_checked: false,
                        wallet_check: None,
                    });
                };
                let message = TransferWithAuthorization {
                    from,
                    to,
                    value,
                    valid_after,
                    valid_before: U256::from_u64(valid_before),
                    nonce,
                };
                // The domain is the offer's (its token's name, version, chain and contract),
                // never the payload's; its separator was worked out with the offer.
                let digest = message.digest_under(&offer.domain_separator);
                let refusal = match sig {
                    Signed::Key(key) => match key.recover(&digest) {
                        Ok(signer) if signer == from => {
                            return Ok(Verified {
                                offer,
                                payer: from,
                                nonce,
                                valid_before,
                                signature_checked: true,
                                wallet_check: None,
                            })
                        }
                        Ok(signer) => Refusal::new(
                            Reason::SignerMismatch,
                            format!("recovered {signer}, but from is {from}"),
                        ),
                        Err(e) => Refusal::new(Reason::SignerMismatch, e.to_string()),
                    },
                    Signed::ByWallet(_, refusal) => refusal.clone(),
                };
                if for_wallet.is_none() {
                    for_wallet = Some(Verified {
                        offer,
                        payer: from,
                        nonce,
                        valid_before,
                        signature_checked: false,
                        wallet_check: Some(Box::new(WalletCheck {
                            digest,
                            signature: sig.bytes(),
                            refusal: refusal.clone(),
                        })),
                    });
                }
                last = Some(refusal);
            }
            Err(r) => last = Some(r),
        }
    }
    // A signer mismatch under some offer, and nothing better under the others: the wallet's word
    // is the last chance (the caller refuses where it cannot ask). A v1 payment whose other
    // candidate offers failed for another reason is still judged under the one whose terms it met.
    for_wallet.ok_or_else(|| last.unwrap_or_else(|| Reason::NetworkMismatch.into()))
}

/// The `accepted` terms must be ours, compared field by field so that each difference has its own
/// reason. Addresses are compared as addresses (checksummed or lowercase alike).
///
/// (Here and for `to` and `accepted.asset`, an address written exactly as our terms write it is
/// ours without being read again: checking a mixed-case address's EIP-55 checksum costs a Keccak
/// permutation, and clients echo the terms as sent.)
fn check_accepted(accepted: &crate::x402::AcceptedTerms, offer: &Offer) -> Result<(), Refusal> {
    let pay_to = match accepted.pay_to == offer.requirements.pay_to {
        true => offer.pay_to,
        false => address("accepted.payTo", &accepted.pay_to)?,
    };
    if pay_to != offer.pay_to {
        return Err(Refusal::new(
            Reason::PayToMismatch,
            format!("accepted.payTo {pay_to}, this route pays {}", offer.pay_to),
        ));
    }
    let amount = number("accepted.amount", &accepted.amount)?;
    if amount != offer.amount {
        return Err(Refusal::new(
            Reason::PriceMismatch,
            format!("accepted.amount {amount}, the price is {}", offer.amount),
        ));
    }
    if accepted.max_timeout_seconds != offer.max_timeout_seconds {
        return Err(Refusal::new(
            Reason::TermsMismatch,
            format!(
                "accepted.maxTimeoutSeconds {}, offered {}",
                accepted.max_timeout_seconds, offer.max_timeout_seconds
            ),
        ));
    }
    let extra = accepted.extra.as_ref();
    let field = |k: &str| extra.and_then(|e| e.get(k)).and_then(|v| v.as_str());
    for (k, want) in [
        ("name", &offer.asset.name),
        ("version", &offer.asset.version),
    ] {
        if field(k) != Some(want.as_str()) {
            return Err(Refusal::new(
                Reason::TermsMismatch,
                format!(
                    "accepted.extra.{k} is {:?}, the token's EIP-712 {k} is {want:?}",
                    field(k).unwrap_or("missing")
                ),
            ));
        }
    }
    if let Some(method) = field("assetTransferMethod") {
        if method != "eip3009" {
            return Err(Refusal::new(
                Reason::TermsMismatch,
                format!("accepted.extra.assetTransferMethod {method:?}; only eip3009 is offered"),
            ));
        }
    }
    Ok(())
}

/// Recipient, value and validity window. Returns `validBefore` as seconds.
#[allow(clippy::too_many_arguments)]
fn check_authorization(
    offer: &Offer,
    _from: Address,
    to: Address,
    value: U256,
    valid_after: U256,
    valid_before: U256,
    now: u64,
    settle_within: u64,
) -> Result<u64, Refusal> {
    if to != offer.pay_to {
        return Err(Refusal::new(
            Reason::RecipientMismatch,
            format!("authorization.to {to}, this route pays {}", offer.pay_to),
        ));
    }
    if value != offer.amount {
        return Err(Refusal::new(
            Reason::ValueMismatch,
            format!("authorization.value {value}, the price is {}", offer.amount),
        ));
    }
    let after = valid_after.to_u64().unwrap_or(u64::MAX);
    // EIP-3009 wants block.timestamp > validAfter: an authorization becomes usable the second
    // after validAfter, so one dated `now` would fail on chain if settled this very second.
    if after >= now {
        return Err(Refusal::new(
            Reason::NotYetValid,
            format!(
                "validAfter {valid_after} is {}s ahead",
                after.saturating_sub(now)
            ),
        ));
    }
    let before = valid_before.to_u64().unwrap_or(u64::MAX);
    if before < now.saturating_add(settle_within) {
        return Err(Refusal::new(
            Reason::ExpiresTooSoon,
            format!(
                "validBefore {valid_before} leaves {}s; settling needs {settle_within}s",
                before.saturating_sub(now)
            ),
        ));
    }
    let longest = offer.max_timeout_seconds.max(CLIENT_VALIDITY_SECONDS);
    if before
        > now
            .saturating_add(longest)
            .saturating_add(CLOCK_SKEW_SECONDS)
    {
        return Err(Refusal::new(
            Reason::ValidTooLong,
            format!("validBefore {valid_before} is more than {longest} s ahead"),
        ));
    }
    Ok(before)
}

fn address(field: &str, s: &str) -> Result<Address, Refusal> {
    Address::parse(s).map_err(|e| {
        Refusal::new(
            Reason::InvalidAddress,
            format!("{field} {:?}: {e}", truncate(s)),
        )
    })
}

/// A decimal uint256 written canonically: a leading zero (`"010000"`) means the same number to us,
/// but not to every facilitator, and the payment goes to the facilitator as written.
fn number(field: &str, s: &str) -> Result<U256, Refusal> {
    if s.len() > 1 && s.starts_with('0') {
        return Err(Refusal::new(
            Reason::InvalidNumber,
            format!("{field} {:?}: written with a leading zero", truncate(s)),
        ));
    }
    U256::from_dec_str(s).map_err(|e| {
        Refusal::new(
            Reason::InvalidNumber,
            format!("{field} {:?}: {e}", truncate(s)),
        )
    })
}

/// Keeps refusal messages short whatever a client sends.
fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(80).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}
