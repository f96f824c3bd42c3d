using SkiaSharp;

namespace RetriBooru.Data.Synth;

/// <summary>One rendered synthetic image: RGB picture, figure mask (white = figure) and normalised face box.</summary>
public sealed class SynthRender(SKBitmap image, SKBitmap mask, float[] faceBox) : IDisposable
{
    public SKBitmap Image { get; } = image;
    public SKBitmap Mask { get; } = mask;
    /// <summary>Face box (x, y, w, h) normalised to [0, 1].</summary>
    public float[] FaceBox { get; } = faceBox;
    public void Dispose() { Image.Dispose(); Mask.Dispose(); }
}

/// <summary>
/// Draws an anime-style figure with SkiaSharp. The figure lives in a unit space 100 units tall, feet at the origin,
/// head up (negative y); the scene places, leans, flips and scales it. Proportions are chibi-like (a big head,
/// big eyes) so that face attributes survive downscaling to 32 px.
/// </summary>
public static class FigureRenderer
{
    const float HeadY = -72f, HeadRadius = 21f, ShoulderY = -50f, WaistY = -24f;
    static readonly SKColor Shoe = new(55, 40, 40);
    static readonly SKColor Ribbon = new(235, 40, 120);
    static readonly SKColor Hat = new(25, 30, 75);

    public static SynthRender Render(SynthCharacter character, SynthOutfit outfit, SynthScene scene, int size)
    {
        if (size < 16) throw new ArgumentOutOfRangeException(nameof(size), "image size must be at least 16 px");
        var style = ArtistStyle.For(scene.Artist);
        var info = new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul);
        // Whole-image transform shared by background and figure: the near-duplicate shift and zoom.
        var global = SKMatrix.CreateTranslation(scene.ShiftXPx, scene.ShiftYPx)
            .PostConcat(SKMatrix.CreateScale(scene.Zoom, scene.Zoom, size / 2f, size / 2f));

        using var figure = new SKBitmap(info);
        float unit = scene.FigureHeight * size / 100f;
        SKMatrix figureMatrix;
        using (var canvas = new SKCanvas(figure))
        {
            canvas.Clear(SKColors.Transparent);
            canvas.SetMatrix(global);
            canvas.Translate(scene.CenterX * size, scene.FeetY * size);
            canvas.RotateDegrees(scene.LeanDegrees);
            canvas.Scale(scene.Flipped ? -unit : unit, unit);
            figureMatrix = canvas.TotalMatrix;
            new Painter(canvas, style, unit, size, new Random(scene.BackgroundSeed ^ 0x5eed)).DrawFigure(character, outfit, scene);
        }

        var image = new SKBitmap(info);
        using (var canvas = new SKCanvas(image))
        {
            canvas.SetMatrix(global);
            // Draw the background over more than the frame so that shifts and zooms never reveal an empty edge.
            Backgrounds.Draw(canvas, scene.Background, size, new Random(scene.BackgroundSeed));
            canvas.ResetMatrix();
            using var figureImage = SKImage.FromBitmap(figure);
            using var paint = new SKPaint();
            if (Math.Abs(scene.Brightness - 1) > 1e-4f)
            {
                float b = scene.Brightness;
                paint.ColorFilter = SKColorFilter.CreateColorMatrix([b, 0, 0, 0, 0, 0, b, 0, 0, 0, 0, 0, b, 0, 0, 0, 0, 0, 1, 0]);
            }
            canvas.DrawImage(figureImage, 0, 0, paint);
            if (paint.ColorFilter is not null)
            {
                // Re-draw the whole picture through the filter so the background changes too.
                using var snapshot = SKImage.FromBitmap(image.Copy());
                canvas.Clear();
                canvas.DrawImage(snapshot, 0, 0, paint);
            }
        }
        image.SetImmutable();

        var mask = new SKBitmap(new SKImageInfo(size, size, SKColorType.Gray8, SKAlphaType.Opaque));
        var alpha = figure.Bytes;
        var maskBytes = new byte[size * size];
        for (int i = 0; i < maskBytes.Length; i++) maskBytes[i] = alpha[i * 4 + 3] >= 128 ? (byte)255 : (byte)0;
        System.Runtime.InteropServices.Marshal.Copy(maskBytes, 0, mask.GetPixels(), maskBytes.Length);

        return new SynthRender(image, mask, FaceBox(figureMatrix, style, size));
    }

    static float[] FaceBox(SKMatrix figureMatrix, ArtistStyle style, int size)
    {
        float r = HeadRadius * style.HeadScale;
        float cy = HeadY - (style.HeadScale - 1) * HeadRadius;
        var corners = new[] { new SKPoint(-r, cy - r), new SKPoint(r, cy - r), new SKPoint(-r, cy + r), new SKPoint(r, cy + r) }
            .Select(figureMatrix.MapPoint).ToArray();
        float x0 = Math.Clamp(corners.Min(p => p.X) / size, 0, 1), x1 = Math.Clamp(corners.Max(p => p.X) / size, 0, 1);
        float y0 = Math.Clamp(corners.Min(p => p.Y) / size, 0, 1), y1 = Math.Clamp(corners.Max(p => p.Y) / size, 0, 1);
        return [Round(x0), Round(y0), Round(x1 - x0), Round(y1 - y0)];
    }

    static float Round(float v) => MathF.Round(v, 4);

    /// <summary>Draws the figure parts in back-to-front order with one artist style.</summary>
    sealed class Painter(SKCanvas canvas, ArtistStyle style, float unit, int size, Random jitter)
    {
        float OutlineUnits => style.OutlinePx * (size / 64f) / unit;

        public void DrawFigure(SynthCharacter character, SynthOutfit outfit, SynthScene scene)
        {
            var hair = SynthVocabulary.HairColors[SynthVocabulary.IndexOf(SynthVocabulary.HairColors, character.HairColor)].Color;
            var skin = SynthVocabulary.SkinTones[SynthVocabulary.IndexOf(SynthVocabulary.SkinTones, character.SkinTone)].Color;
            var eyes = SynthVocabulary.EyeColors[SynthVocabulary.IndexOf(SynthVocabulary.EyeColors, character.EyeColor)].Color;
            var top = SynthVocabulary.GarmentColors[SynthVocabulary.IndexOf(SynthVocabulary.GarmentColors, outfit.TopColor)].Color;
            var bottom = SynthVocabulary.GarmentColors[SynthVocabulary.IndexOf(SynthVocabulary.GarmentColors, outfit.BottomColor)].Color;
            float headR = HeadRadius * style.HeadScale;
            float headY = HeadY - (style.HeadScale - 1) * HeadRadius;

            DrawBackHair(character.HairStyle, hair, headY, headR);
            var (legL, legR) = scene.Pose == "walking" ? (14f, -14f) : (3f, -3f);
            DrawLeg(-6, legL, skin, outfit.Bottom, bottom);
            DrawLeg(6, legR, skin, outfit.Bottom, bottom);
            DrawBottom(outfit, bottom);
            Shape(Rect(-3.5f, headY + headR - 6, 7, 10), skin);
            DrawTorso(outfit, top);
            var (upperL, foreL, upperR, foreR) = scene.Pose switch
            {
                "arms_up" => (165f, 0f, 165f, 0f),
                "waving" => (12f, 0f, 135f, 25f),
                "hands_on_hips" => (50f, -105f, 50f, -105f),
                "walking" => (22f, 0f, -18f, 0f),
                "outstretched_arms" => (90f, 0f, 90f, 0f),
                _ => (12f, 0f, 12f, 0f),
            };
            DrawArm(-15, upperL, foreL, skin, outfit.Top, top);
            DrawArm(15, -upperR, -foreR, skin, outfit.Top, top);
            DrawHead(character, scene.Expression, hair, skin, eyes, headY, headR);
        }

        void DrawBackHair(string hairStyle, SKColor hair, float headY, float r)
        {
            switch (hairStyle)
            {
                case "long":
                    Shape(RoundRect(-r - 2, headY - r + 2, 2 * r + 4, r + 36, 10), hair);
                    break;
                case "bob":
                    Shape(RoundRect(-r - 3, headY - r, 2 * r + 6, 2 * r - 4, 8), hair);
                    break;
                case "twintails":
                    // Tails end at the chin line so that hair does not enter the clothing region.
                    Shape(Oval(-r - 6, headY + 7, 6.5f, 14), hair);
                    Shape(Oval(r + 6, headY + 7, 6.5f, 14), hair);
                    break;
                case "ponytail":
                    Shape(Oval(r + 3, headY + 4, 6.5f, 17), hair);
                    break;
            }
            Shape(Oval(0, headY - 1, r + 3, r + 3), hair);
        }

        void DrawLeg(float x, float angle, SKColor skin, string bottomKind, SKColor bottom)
        {
            canvas.Save();
            canvas.Translate(x, WaistY);
            canvas.RotateDegrees(angle);
            Shape(RoundRect(-4, 0, 8, 23, 3), skin);
            if (bottomKind == "pants") Shape(RoundRect(-4.5f, -1, 9, 23, 2), bottom);
            if (bottomKind == "shorts") Shape(RoundRect(-5, -1, 10, 9, 2), bottom);
            Shape(Oval(0, 23.5f, 5, 3), Shoe);
            canvas.Restore();
        }

        void DrawBottom(SynthOutfit outfit, SKColor color)
        {
            switch (outfit.Bottom)
            {
                case "pleated_skirt":
                    Shape(Trapezoid(WaistY - 1, 13, -11, 18), color);
                    Lines(color, [(-6, WaistY + 2, -8, -12), (0, WaistY + 2, 0, -12), (6, WaistY + 2, 8, -12)]);
                    break;
                case "long_skirt":
                    Shape(Trapezoid(WaistY - 1, 13, -8, 15), color);
                    break;
                case "pants":
                case "shorts":
                    Shape(RoundRect(-13, WaistY - 1, 26, 7, 2), color);
                    break;
            }
        }

        void DrawTorso(SynthOutfit outfit, SKColor color)
        {
            if (outfit.Top == "dress") Shape(Trapezoid(WaistY - 2, 13, -8, 19), color);
            if (outfit.Top == "hoodie") Shape(Oval(0, ShoulderY, 12, 5), Darker(color, 0.8f));
            Shape(Trapezoid(ShoulderY, 16, WaistY, 14), color);
            switch (outfit.Top)
            {
                case "serafuku":
                    Shape(Trapezoid(ShoulderY, 13, ShoulderY + 7, 8), new SKColor(250, 250, 250));
                    Shape(Trapezoid(ShoulderY + 6, 3, ShoulderY + 12, 0.5f), new SKColor(210, 30, 40));
                    break;
                case "hoodie":
                    Shape(RoundRect(-7, WaistY - 9, 14, 6, 2), Darker(color, 0.85f));
                    break;
                case "jacket":
                    Lines(color, [(0, ShoulderY + 1, 0, WaistY)]);
                    Shape(Oval(-3, ShoulderY + 9, 1.2f, 1.2f), new SKColor(230, 200, 60));
                    Shape(Oval(3, ShoulderY + 9, 1.2f, 1.2f), new SKColor(230, 200, 60));
                    break;
                case "t-shirt":
                    Shape(Trapezoid(ShoulderY - 0.5f, 4.5f, ShoulderY + 3, 2.5f), Darker(color, 0.85f));
                    break;
            }
        }

        void DrawArm(float x, float upperAngle, float foreAngle, SKColor skin, string top, SKColor topColor)
        {
            bool longSleeve = top is "serafuku" or "hoodie" or "jacket";
            canvas.Save();
            canvas.Translate(x, ShoulderY + 2);
            canvas.RotateDegrees(x < 0 ? upperAngle : upperAngle);
            Shape(RoundRect(-3.5f, -1, 7, 14, 3), top == "dress" ? skin : topColor);
            canvas.Translate(0, 12.5f);
            canvas.RotateDegrees(x < 0 ? foreAngle : foreAngle);
            Shape(RoundRect(-3.2f, -1, 6.4f, 12, 3), longSleeve ? topColor : skin);
            Shape(Oval(0, 12, 3.6f, 3.6f), skin);
            canvas.Restore();
        }

        void DrawHead(SynthCharacter character, string expression, SKColor hair, SKColor skin, SKColor eyes, float headY, float r)
        {
            Shape(Oval(0, headY, r, r), skin);
            // Bangs: the top of the head, with a jagged lower edge.
            var bangs = new SKPath();
            bangs.MoveTo(-r - 2, headY + 2);
            bangs.ArcTo(new SKRect(-r - 2, headY - r - 2, r + 2, headY + r + 2), 180, 180, false);
            bangs.LineTo(r + 2, headY + 2);
            for (int i = 4; i >= 0; i--)
            {
                float xa = -r - 2 + (2 * r + 4) * (i + 0.5f) / 5, xb = -r - 2 + (2 * r + 4) * i / 5;
                bangs.LineTo(xa, headY - 3);
                bangs.LineTo(xb, headY - 7 + (i % 2) * 3);
            }
            bangs.Close();
            Shape(bangs, hair);
            if (character.HairStyle == "short" || character.HairStyle == "bob")
            {
                Shape(Oval(-r + 1, headY + 4, 3.5f, 9), hair);
                Shape(Oval(r - 1, headY + 4, 3.5f, 9), hair);
            }

            float es = style.EyeScale;
            foreach (float ex in new[] { -8.5f, 8.5f })
            {
                Shape(Oval(ex, headY + 4, 4.6f * es, 6f * es), eyes, shade: false);
                FillOnly(Oval(ex, headY + 5.5f * es, 1.8f * es, 2.4f * es), new SKColor(20, 16, 24));
                FillOnly(Oval(ex - 1.6f * es, headY + 1.5f, 1.3f * es, 1.3f * es), SKColors.White);
            }
            if (style.Blush)
            {
                FillOnly(Oval(-13, headY + 11, 3.5f, 1.8f), new SKColor(250, 130, 150, 160));
                FillOnly(Oval(13, headY + 11, 3.5f, 1.8f), new SKColor(250, 130, 150, 160));
            }
            DrawMouth(expression, headY + 14);
            DrawAccessory(character.Accessory, headY, r);
        }

        void DrawMouth(string expression, float y)
        {
            var dark = new SKColor(120, 40, 50);
            switch (expression)
            {
                case "open_mouth":
                    FillOnly(Oval(0, y, 3, 2.6f), dark);
                    break;
                case "smile":
                    Stroke(Arc(0, y - 3, 4.5f, 3.5f, 20, 140), dark, 1.6f);
                    break;
                case "frown":
                    Stroke(Arc(0, y + 2.5f, 4, 3, 200, 140), dark, 1.6f);
                    break;
                default:
                    Stroke(Segment(-3, y, 3, y), dark, 1.4f);
                    break;
            }
        }

        void DrawAccessory(string accessory, float headY, float r)
        {
            switch (accessory)
            {
                case "hair_ribbon":
                    {
                        var bow = new SKPath();
                        float bx = r - 5, by = headY - r + 1;
                        bow.MoveTo(bx, by); bow.LineTo(bx - 8, by - 6); bow.LineTo(bx - 8, by + 6); bow.Close();
                        bow.MoveTo(bx, by); bow.LineTo(bx + 8, by - 6); bow.LineTo(bx + 8, by + 6); bow.Close();
                        Shape(bow, Ribbon);
                        break;
                    }
                case "glasses":
                    Stroke(Oval(-8.5f, headY + 4, 7, 7), new SKColor(30, 30, 30), 2f);
                    Stroke(Oval(8.5f, headY + 4, 7, 7), new SKColor(30, 30, 30), 2f);
                    Stroke(Segment(-1.5f, headY + 3, 1.5f, headY + 3), new SKColor(30, 30, 30), 2f);
                    break;
                case "hairband":
                    Stroke(Arc(0, headY, r + 0.5f, r + 0.5f, 200, 140), new SKColor(20, 20, 20), 6.5f);
                    Stroke(Arc(0, headY, r + 0.5f, r + 0.5f, 202, 136), new SKColor(250, 250, 250), 4f);
                    break;
                case "hat":
                    Shape(Oval(0, headY - r + 3, r + 6, 6), Hat);
                    Shape(Oval(0, headY - r - 2, r - 4, 8), Hat);
                    Shape(Oval(0, headY - r - 10, 2.5f, 2.5f), Hat);
                    break;
            }
        }

        // ---- primitives: fill (optionally shaded) then outline, both in the artist's style ----

        void Shape(SKPath path, SKColor color, bool shade = true)
        {
            using (path)
            {
                if (style.JitterUnits > 0) path.Transform(SKMatrix.CreateTranslation(Jitter(), Jitter()));
                using var fill = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Fill, Color = color };
                if (style.Shading && shade)
                {
                    var bounds = path.Bounds;
                    fill.Shader = SKShader.CreateLinearGradient(new SKPoint(bounds.Left, bounds.Top), new SKPoint(bounds.Right, bounds.Top),
                        [color, color, Darker(color, 0.78f)], [0f, 0.55f, 0.56f], SKShaderTileMode.Clamp);
                }
                canvas.DrawPath(path, fill);
                if (OutlineUnits > 0)
                {
                    using var line = new SKPaint
                    {
                        IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = OutlineUnits,
                        Color = style.OutlineColor ?? Darker(color, 0.55f),
                    };
                    canvas.DrawPath(path, line);
                }
            }
        }

        void FillOnly(SKPath path, SKColor color)
        {
            using (path)
            using (var fill = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Fill, Color = color })
                canvas.DrawPath(path, fill);
        }

        void Stroke(SKPath path, SKColor color, float width)
        {
            using (path)
            using (var paint = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = width, Color = color, StrokeCap = SKStrokeCap.Round })
                canvas.DrawPath(path, paint);
        }

        void Lines(SKColor color, (float X0, float Y0, float X1, float Y1)[] segments)
        {
            foreach (var (x0, y0, x1, y1) in segments) Stroke(Segment(x0, y0, x1, y1), Darker(color, 0.7f), 0.9f);
        }

        float Jitter() => (jitter.NextSingle() * 2 - 1) * style.JitterUnits;

        static SKPath Oval(float cx, float cy, float rx, float ry)
        {
            var p = new SKPath();
            p.AddOval(new SKRect(cx - rx, cy - ry, cx + rx, cy + ry));
            return p;
        }

        static SKPath Rect(float x, float y, float w, float h)
        {
            var p = new SKPath();
            p.AddRect(new SKRect(x, y, x + w, y + h));
            return p;
        }

        static SKPath RoundRect(float x, float y, float w, float h, float r)
        {
            var p = new SKPath();
            p.AddRoundRect(new SKRect(x, y, x + w, y + h), r, r);
            return p;
        }

        /// <summary>A trapezoid centred on x = 0 from (y0, half width w0) to (y1, half width w1).</summary>
        static SKPath Trapezoid(float y0, float w0, float y1, float w1)
        {
            var p = new SKPath();
            p.MoveTo(-w0, y0); p.LineTo(w0, y0); p.LineTo(w1, y1); p.LineTo(-w1, y1); p.Close();
            return p;
        }

        static SKPath Arc(float cx, float cy, float rx, float ry, float start, float sweep)
        {
            var p = new SKPath();
            p.AddArc(new SKRect(cx - rx, cy - ry, cx + rx, cy + ry), start, sweep);
            return p;
        }

        static SKPath Segment(float x0, float y0, float x1, float y1)
        {
            var p = new SKPath();
            p.MoveTo(x0, y0); p.LineTo(x1, y1);
            return p;
        }
    }

    internal static SKColor Darker(SKColor c, float f) => new((byte)(c.Red * f), (byte)(c.Green * f), (byte)(c.Blue * f), c.Alpha);
}
