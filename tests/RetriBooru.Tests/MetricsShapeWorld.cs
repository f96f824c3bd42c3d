using SkiaSharp;

namespace RetriBooru.Tests;

/// <summary>
/// A tiny drawn world for the metrics tests: a "character" is a head (hair colour) on a body (clothing colour and
/// shape); everything else (background pattern and colour, position, arm pose) varies freely. Each scene also
/// returns the figure mask and face box, like the dataset records do.
/// </summary>
public static class MetricsShapeWorld
{
    public static readonly string[] HairColours = ["red", "blue", "green", "yellow"];
    public static readonly string[] ClothingColours = ["purple", "orange", "white", "black"];
    public static readonly string[] Backgrounds = ["stripes", "dots", "checker", "plain"];
    public static readonly string[] Poses = ["left", "center", "right"];
    public static readonly string[] Arms = ["up", "down"];

    public sealed record Character(string Hair, string Clothing, bool Dress);

    public sealed record Scene(Character Character, string Background, SKColor BackgroundColour, string Pose, string Arms, float Scale)
    {
        public IReadOnlyDictionary<string, string> Attributes => new Dictionary<string, string>
        {
            ["hair"] = Character.Hair, ["clothing"] = Character.Clothing, ["background"] = Background, ["pose"] = Pose, ["arms"] = Arms,
        };
    }

    public sealed class Drawn(Scene scene, SKBitmap image, SKBitmap mask, SKRectI faceBox, SKRectI bodyBox) : IDisposable
    {
        public Scene Scene { get; } = scene;
        public SKBitmap Image { get; } = image;
        public SKBitmap Mask { get; } = mask;
        public SKRectI FaceBox { get; } = faceBox;
        public SKRectI BodyBox { get; } = bodyBox;
        public void Dispose() { Image.Dispose(); Mask.Dispose(); }
    }

    public static Character RandomCharacter(Random rng) =>
        new(HairColours[rng.Next(HairColours.Length)], ClothingColours[rng.Next(ClothingColours.Length)], rng.Next(2) == 0);

    public static Scene RandomScene(Character character, Random rng) =>
        new(character, Backgrounds[rng.Next(Backgrounds.Length)],
            SKColor.FromHsv(rng.Next(360), 25 + rng.Next(40), 60 + rng.Next(40)),
            Poses[rng.Next(Poses.Length)], Arms[rng.Next(Arms.Length)], 0.8f + 0.3f * (float)rng.NextDouble());

    static SKColor Named(string name) => name switch
    {
        "red" => new SKColor(220, 30, 30), "blue" => new SKColor(30, 60, 230), "green" => new SKColor(30, 180, 50),
        "yellow" => new SKColor(240, 220, 40), "purple" => new SKColor(130, 40, 170), "orange" => new SKColor(250, 140, 20),
        "white" => new SKColor(245, 245, 245), "black" => new SKColor(20, 20, 20),
        _ => throw new ArgumentException(name),
    };

    public static Drawn Draw(Scene scene, int size = 128)
    {
        var image = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        var mask = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(image);
        using var maskCanvas = new SKCanvas(mask);
        DrawBackground(canvas, scene, size);
        maskCanvas.Clear(SKColors.Black);
        float unit = size / 128f * scene.Scale;
        float cx = scene.Pose switch { "left" => size * 0.3f, "right" => size * 0.7f, _ => size * 0.5f };
        float headY = size * 0.32f;
        var (faceBox, bodyBox) = DrawFigure(canvas, scene, cx, headY, unit, null);
        DrawFigure(maskCanvas, scene, cx, headY, unit, SKColors.White);
        return new Drawn(scene, image, mask, faceBox, bodyBox);
    }

    static void DrawBackground(SKCanvas canvas, Scene scene, int size)
    {
        var colour = scene.BackgroundColour;
        var accent = new SKColor((byte)(255 - colour.Red), (byte)(255 - colour.Green), (byte)(255 - colour.Blue));
        canvas.Clear(colour);
        using var paint = new SKPaint { Color = accent, IsAntialias = true };
        int step = size / 8;
        switch (scene.Background)
        {
            case "stripes":
                for (int x = 0; x < size; x += step) canvas.DrawRect(x, 0, step / 2f, size, paint);
                break;
            case "dots":
                for (int y = step / 2; y < size; y += step)
                    for (int x = step / 2; x < size; x += step) canvas.DrawCircle(x, y, step / 4f, paint);
                break;
            case "checker":
                for (int y = 0; y < size; y += step)
                    for (int x = 0; x < size; x += step)
                        if (((x + y) / step) % 2 == 0) canvas.DrawRect(x, y, step, step, paint);
                break;
            case "plain":
                break;
            default: throw new ArgumentException(scene.Background);
        }
    }

    static (SKRectI Face, SKRectI Body) DrawFigure(SKCanvas canvas, Scene scene, float cx, float headY, float unit, SKColor? solid)
    {
        using var skin = new SKPaint { Color = solid ?? new SKColor(250, 220, 190), IsAntialias = true };
        using var hair = new SKPaint { Color = solid ?? Named(scene.Character.Hair), IsAntialias = true };
        using var cloth = new SKPaint { Color = solid ?? Named(scene.Character.Clothing), IsAntialias = true };
        using var limb = new SKPaint { Color = solid ?? new SKColor(250, 220, 190), StrokeWidth = 5 * unit, IsAntialias = true, StrokeCap = SKStrokeCap.Round };
        float r = 14 * unit;
        // Hair: a larger cap behind the face, so the hair colour dominates the face box.
        canvas.DrawCircle(cx, headY - 3 * unit, r + 4 * unit, hair);
        canvas.DrawCircle(cx, headY + 2 * unit, r - 2 * unit, skin);
        float bodyTop = headY + r + 2 * unit, bodyBottom = bodyTop + 42 * unit;
        if (scene.Character.Dress)
        {
            using var path = new SKPath();
            path.MoveTo(cx - 9 * unit, bodyTop);
            path.LineTo(cx + 9 * unit, bodyTop);
            path.LineTo(cx + 22 * unit, bodyBottom);
            path.LineTo(cx - 22 * unit, bodyBottom);
            path.Close();
            canvas.DrawPath(path, cloth);
        }
        else canvas.DrawRect(cx - 14 * unit, bodyTop, 28 * unit, 42 * unit, cloth);
        float armY = bodyTop + 6 * unit, armDy = scene.Arms == "up" ? -22 * unit : 22 * unit;
        canvas.DrawLine(cx - 12 * unit, armY, cx - 30 * unit, armY + armDy, limb);
        canvas.DrawLine(cx + 12 * unit, armY, cx + 30 * unit, armY + armDy, limb);
        var face = SKRectI.Round(new SKRect(cx - r - 4 * unit, headY - r - 7 * unit, cx + r + 4 * unit, headY + r + 2 * unit));
        var body = SKRectI.Round(new SKRect(cx - 22 * unit, bodyTop, cx + 22 * unit, bodyBottom));
        return (face, body);
    }

    /// <summary>Uniform noise, the "unrelated random image".</summary>
    public static SKBitmap Noise(Random rng, int size = 128)
    {
        var bytes = new byte[size * size * 4];
        rng.NextBytes(bytes);
        for (int i = 3; i < bytes.Length; i += 4) bytes[i] = 255;
        var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        System.Runtime.InteropServices.Marshal.Copy(bytes, 0, bitmap.GetPixels(), bytes.Length);
        return bitmap;
    }
}
