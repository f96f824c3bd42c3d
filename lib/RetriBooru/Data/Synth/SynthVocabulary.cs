using SkiaSharp;

namespace RetriBooru.Data.Synth;

/// <summary>A named value of a synthetic attribute, with the colour it is drawn in (when it has one).</summary>
public sealed record SynthColor(string Name, SKColor Color);

/// <summary>
/// The attribute vocabularies of RetriBooru-Synth. They are small and visually distinct on purpose, so that each
/// value stays recognisable at 32 px. The metrics work trains attribute probes on <see cref="SynthAttributes"/>
/// and reads the class lists from here; the order of every list is part of the format (do not reorder).
/// </summary>
public static class SynthVocabulary
{
    /// <summary>
    /// Outfits one character can have: each needs its own top colour, and a top in the character's hair colour is not
    /// drawn; black, red, blue, pink and green hair share a garment colour, so one colour fewer than the palette.
    /// </summary>
    public const int MaxOutfitsPerCharacter = 8;

    public static readonly IReadOnlyList<SynthColor> HairColors =
    [
        new("black", new SKColor(30, 28, 36)), new("brown", new SKColor(120, 72, 36)),
        new("blonde", new SKColor(246, 214, 92)), new("red", new SKColor(214, 40, 40)),
        new("blue", new SKColor(50, 100, 230)), new("pink", new SKColor(250, 140, 200)),
        new("silver", new SKColor(215, 220, 230)), new("green", new SKColor(60, 180, 80)),
    ];

    public static readonly IReadOnlyList<string> HairStyles = ["short", "long", "twintails", "ponytail", "bob"];

    public static readonly IReadOnlyList<SynthColor> EyeColors =
    [
        new("blue", new SKColor(40, 110, 255)), new("red", new SKColor(230, 30, 40)),
        new("green", new SKColor(30, 190, 70)), new("brown", new SKColor(110, 60, 20)),
        new("purple", new SKColor(150, 60, 220)), new("yellow", new SKColor(245, 200, 20)),
    ];

    public static readonly IReadOnlyList<SynthColor> SkinTones =
    [
        new("pale", new SKColor(255, 236, 222)), new("fair", new SKColor(246, 208, 176)),
        new("tan", new SKColor(208, 150, 104)), new("dark", new SKColor(128, 84, 56)),
    ];

    /// <summary>Accessories worn on the head: part of the face identity.</summary>
    public static readonly IReadOnlyList<string> Accessories = ["none", "hair_ribbon", "glasses", "hairband", "hat"];

    /// <summary>Upper garments; <c>dress</c> is one piece and also covers the legs (its bottom is <c>none</c>).</summary>
    public static readonly IReadOnlyList<string> TopGarments = ["t-shirt", "serafuku", "hoodie", "jacket", "dress"];

    public static readonly IReadOnlyList<string> BottomGarments = ["none", "pleated_skirt", "pants", "shorts", "long_skirt"];

    public static readonly IReadOnlyList<SynthColor> GarmentColors =
    [
        new("red", new SKColor(220, 30, 40)), new("orange", new SKColor(250, 130, 20)),
        new("yellow", new SKColor(250, 225, 40)), new("green", new SKColor(30, 160, 60)),
        new("blue", new SKColor(30, 70, 220)), new("purple", new SKColor(130, 40, 190)),
        new("pink", new SKColor(250, 120, 190)), new("white", new SKColor(245, 245, 245)),
        new("black", new SKColor(35, 35, 40)),
    ];

    public static readonly IReadOnlyList<string> Poses = ["standing", "arms_up", "waving", "hands_on_hips", "walking", "outstretched_arms"];

    public static readonly IReadOnlyList<string> Expressions = ["smile", "open_mouth", "frown", "expressionless"];

    public static readonly IReadOnlyList<string> Backgrounds = ["simple", "gradient", "sky", "classroom", "night", "beach", "forest"];

    /// <summary>Drawing styles; see <see cref="ArtistStyle"/> for what each changes.</summary>
    public static readonly IReadOnlyList<string> Artists = ["inkline", "softcel", "flatpop", "sketchy", "bigeyes", "noline"];

    /// <summary>Horizontal position bucket of the figure centre (thirds of the image).</summary>
    public static readonly IReadOnlyList<string> Positions = ["left", "center", "right"];

    /// <summary>Figure height bucket relative to the image.</summary>
    public static readonly IReadOnlyList<string> Scales = ["small", "medium", "large"];

    /// <summary>The Danbooru tag a garment type is written as.</summary>
    public static string GarmentTag(string garment) => garment switch
    {
        "t-shirt" => "t-shirt",
        "long_skirt" => "long_skirt",
        _ => garment,
    };

    /// <summary>The colour-garment tag Danbooru uses for a coloured garment (e.g. <c>red_skirt</c>).</summary>
    public static string ColorGarmentTag(string color, string garment) => garment switch
    {
        "t-shirt" => $"{color}_shirt",
        "serafuku" => $"{color}_serafuku",
        "pleated_skirt" or "long_skirt" => $"{color}_skirt",
        _ => $"{color}_{garment}",
    };

    public static string HairStyleTag(string style) => style switch
    {
        "short" => "short_hair",
        "long" => "long_hair",
        "bob" => "bob_cut",
        _ => style,
    };

    public static int IndexOf(IReadOnlyList<SynthColor> list, string name)
    {
        for (int i = 0; i < list.Count; i++) if (list[i].Name == name) return i;
        throw new ArgumentException($"unknown value '{name}'");
    }
}
