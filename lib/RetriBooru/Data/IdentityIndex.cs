namespace RetriBooru.Data;

/// <summary>An image as the identity index sees it: character, clothing tags and (when a mask exists) clothing colour.</summary>
public sealed record IdentityCandidate(string Id, string Character, IReadOnlyList<string> ClothingTags, string? ClothingColor);

/// <summary>The index's verdict: clothing identity per kept image, rejected images with reasons.</summary>
public sealed record IdentityAssignment(
    IReadOnlyDictionary<string, string> ClothingIds,
    IReadOnlyDictionary<string, IReadOnlyList<string>> Similar,
    IReadOnlyList<(string Id, string Code, string Message)> Rejected);

/// <summary>
/// Identity = character tag; clothing identity = a cluster within a character of images with the same clothing tag set
/// and the same dominant clothing colour. Strict rules (each rejection is counted):
/// <list type="bullet">
/// <item>an image without a mask has no measured colour; it joins its tag group only if that group has at most one
/// measured colour, otherwise its clothing is ambiguous (<c>clothing_ambiguous</c>);</item>
/// <item>a clothing identity with a single image cannot give a leakage-free clothing reference (<c>singleton_identity</c>).</item>
/// </list>
/// Clusters are numbered <c>c1, c2, ...</c> per character in order of their first image id; <c>similar</c> lists
/// the other images of the same character and clothing identity.
/// </summary>
public static class IdentityIndex
{
    public static IdentityAssignment Assign(IEnumerable<IdentityCandidate> candidates)
    {
        var clothingIds = new Dictionary<string, string>(StringComparer.Ordinal);
        var similar = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        var rejected = new List<(string, string, string)>();
        foreach (var character in candidates.GroupBy(c => c.Character, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var clusters = new List<List<IdentityCandidate>>();
            foreach (var tagGroup in character.GroupBy(c => string.Join('+', c.ClothingTags), StringComparer.Ordinal))
            {
                var colours = tagGroup.Where(c => c.ClothingColor is not null).Select(c => c.ClothingColor!).Distinct().ToList();
                if (colours.Count <= 1)
                {
                    clusters.Add(tagGroup.ToList());
                    continue;
                }
                foreach (var colour in colours) clusters.Add(tagGroup.Where(c => c.ClothingColor == colour).ToList());
                foreach (var unknown in tagGroup.Where(c => c.ClothingColor is null))
                    rejected.Add((unknown.Id, "clothing_ambiguous",
                        $"no mask, so no clothing colour, and the images tagged [{string.Join(", ", unknown.ClothingTags)}] of {character.Key} come in {colours.Count} colours ({string.Join(", ", colours)})"));
            }
            int number = 0;
            foreach (var cluster in clusters.Select(c => c.OrderBy(x => x.Id, StringComparer.Ordinal).ToList()).OrderBy(c => c[0].Id, StringComparer.Ordinal))
            {
                if (cluster.Count < 2)
                {
                    rejected.Add((cluster[0].Id, "singleton_identity",
                        $"no other image of {character.Key} wears [{string.Join(", ", cluster[0].ClothingTags)}]{(cluster[0].ClothingColor is null ? "" : " in " + cluster[0].ClothingColor)}: no leakage-free clothing reference exists"));
                    continue;
                }
                string clothingId = $"c{++number}";
                var ids = cluster.Select(c => c.Id).ToList();
                foreach (var id in ids)
                {
                    clothingIds[id] = clothingId;
                    similar[id] = ids.Where(other => other != id).ToList();
                }
            }
        }
        return new IdentityAssignment(clothingIds, similar, rejected);
    }
}
