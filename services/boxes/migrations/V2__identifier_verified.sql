-- Whether the identity's identifier (email or phone) was verified by its host app. Only verified
-- identifiers satisfy `identifier` access rules (README, "Identifier access rules"); identities
-- stored before this column count as unverified until their next login says otherwise.
ALTER TABLE boxes.identities ADD COLUMN identifier_verified boolean NOT NULL DEFAULT false;
