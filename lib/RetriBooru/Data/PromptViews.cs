using RetriBooru.Settings;
using RetriBooru.Data.Ingest;

namespace RetriBooru.Data;

/// <summary>
/// What of a target's tag prompt a model is given.
/// <list type="bullet">
/// <item><c>full</c>: every tag, as the manifest has it (the paper's training prompts);</item>
/// <item><c>context</c>: the tags that describe the scene but not who is in it: the character name, the face tags (hair
/// colour and style, eye colour, head accessories) and the clothing tags are removed. What remains (pose, expression,
/// background, framing, count) says nothing about the identity, so a model prompted this way can only get the
/// character's hair and outfit from its references. Evaluation uses it by default: with the full prompt a text-only
/// model reads <c>blonde_hair, pink_serafuku</c> from the prompt and identity scores measure prompt following.</item>
/// </list>
/// </summary>
public static class PromptViews
{
    /// <summary>The prompt as <paramref name="view"/> shows it; tags keep their order and the ", " separator.</summary>
    public static string Apply(PromptView view, string prompt, string? character)
    {
        if (view == PromptView.Full) return prompt;
        var tags = prompt.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return string.Join(", ", tags.Where(t => !IsIdentityTag(t, character)));
    }

    /// <summary>Danbooru hairstyle tags that do not end in <c>_hair</c>.</summary>
    static readonly HashSet<string> HairStyles = new(StringComparer.Ordinal)
    {
        "twintails", "ponytail", "side_ponytail", "high_ponytail", "low_ponytail", "bob_cut", "braid", "twin_braids", "single_braid",
        "french_braid", "hair_bun", "double_bun", "single_hair_bun", "ahoge", "bangs", "blunt_bangs", "swept_bangs", "sidelocks",
        "drill_hair", "hime_cut", "pixie_cut", "bowl_cut", "buzz_cut", "mohawk", "afro", "dreadlocks", "two_side_up", "one_side_up",
    };

    /// <summary>Head accessories: inside the face box, so part of the face identity (as <see cref="ClothingTags"/> decides too).</summary>
    static readonly HashSet<string> HeadAccessories = new(StringComparer.Ordinal)
    {
        "hair_ribbon", "hairband", "hair_ornament", "hairclip", "hair_bow", "hair_flower", "headband", "hat", "glasses",
        "sunglasses", "eyepatch", "earrings", "animal_ears", "cat_ears", "fox_ears", "horns", "halo", "beret", "crown", "tiara",
    };

    /// <summary>
    /// True for tags that name or describe the identity: the character tag (as given, or any tag with a Danbooru
    /// qualifier in parentheses, e.g. <c>akane_(retribooru_synth)</c>), hair and eye tags, hairstyles, head accessories
    /// and clothing (<see cref="ClothingTags.IsClothing"/>).
    /// </summary>
    public static bool IsIdentityTag(string tag, string? character)
    {
        if (character is not null && tag.Equals(character, StringComparison.Ordinal)) return true;
        if (tag.EndsWith(')') && tag.Contains("_(", StringComparison.Ordinal)) return true;
        if (tag.EndsWith("_hair", StringComparison.Ordinal) || tag.EndsWith("_eyes", StringComparison.Ordinal)) return true;
        return HairStyles.Contains(tag) || HeadAccessories.Contains(tag) || ClothingTags.IsClothing(tag);
    }
}
