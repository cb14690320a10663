"""Decide stage: which linked clusters are campaigns, their records, and the policy table.

- ``gates``: the rules that turn a cluster into a campaign (``select_campaigns``);
- ``details``: what the store knows about a campaign's traffic (``campaign_details``);
- ``campaign_records``: the ``records.Campaign`` of each, with its score and evidence sentences;
- ``members``: the account view the gates read, and campaign members flagged;
- ``campaigns``: ``find_campaigns``, all of the above in one call;
- ``policy``: the policy table (``policy_table``) and its gateway format (``policy_records``).

>>> from distillguard.decide import find_campaigns, policy_table
>>> find_campaigns.__module__, policy_table.__module__
('distillguard.decide.campaigns', 'distillguard.decide.policy')
"""

from distillguard.decide.campaign_records import build_campaigns, campaign_record
from distillguard.decide.campaigns import FoundCampaigns, MemberBars, find_campaigns
from distillguard.decide.details import CampaignDetails, campaign_details
from distillguard.decide.gates import Candidate, select_campaigns
from distillguard.decide.members import (
    HARVEST_REASON,
    account_view,
    flag_campaign_members,
    flag_harvesters,
    harvest_reason,
    member_reason,
)
from distillguard.decide.policy import policy_records, policy_table

__all__ = ["HARVEST_REASON", "CampaignDetails", "Candidate",
            "FoundCampaigns", "MemberBars", "account_view", "build_campaigns",
           "campaign_details", "campaign_record", "find_campaigns", "flag_campaign_members", "flag_harvesters",
           "harvest_reason", "member_reason",
           "policy_records", "policy_table", "select_campaigns"]
