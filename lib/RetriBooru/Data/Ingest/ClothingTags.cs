namespace RetriBooru.Data.Ingest;

/// <summary>
/// Which Danbooru general tags describe clothing. A tag is clothing when it is a garment noun (<c>serafuku</c>) or ends
/// in one after an underscore (<c>red_skirt</c>, <c>pleated_skirt</c>, <c>school_uniform</c>). Head accessories
/// (<c>hat</c>, <c>hair_ribbon</c>, <c>glasses</c>) are deliberately not clothing: they sit inside the face box and
/// belong to the face identity. Tags that deny a garment (<c>no_shoes</c>) or describe an action (<c>skirt_lift</c>) are not clothing.
/// </summary>
public static class ClothingTags
{
    public static readonly IReadOnlySet<string> GarmentNouns = new HashSet<string>(StringComparer.Ordinal)
    {
        "shirt", "t-shirt", "blouse", "skirt", "miniskirt", "dress", "sundress", "serafuku", "sailor_collar", "uniform",
        "jacket", "blazer", "coat", "labcoat", "raincoat", "hoodie", "sweater", "cardigan", "vest", "pants", "shorts",
        "jeans", "leggings", "thighhighs", "pantyhose", "socks", "kneehighs", "boots", "shoes", "sneakers", "loafers",
        "sandals", "gloves", "scarf", "necktie", "bowtie", "kimono", "yukata", "hakama", "apron", "swimsuit", "bikini",
        "leotard", "bodysuit", "armor", "cape", "capelet", "cloak", "robe", "suit", "tank_top", "crop_top", "camisole",
        "overalls", "sleeves", "corset", "belt", "sash", "obi", "tabard", "gakuran", "tracksuit", "pajamas", "plugsuit",
        "maid", "miko", "neckerchief", "ascot", "choker", "sweater_vest", "turtleneck", "tube_top", "bra", "nightgown",
    };

    public static bool IsClothing(string tag)
    {
        if (tag.StartsWith("no_", StringComparison.Ordinal)) return false;
        if (GarmentNouns.Contains(tag)) return true;
        for (int i = tag.IndexOf('_'); i >= 0; i = tag.IndexOf('_', i + 1))
            if (GarmentNouns.Contains(tag[(i + 1)..])) return true;
        return false;
    }

    /// <summary>The clothing tags of a post, sorted (so the same outfit always gives the same key).</summary>
    public static IReadOnlyList<string> Extract(IEnumerable<string> generalTags) =>
        generalTags.Where(IsClothing).Distinct(StringComparer.Ordinal).OrderBy(t => t, StringComparer.Ordinal).ToList();
}
